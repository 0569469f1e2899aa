"""Find verifiers by entry-point name or import path.

Discovery goes through the ``rlvr.verifiers`` entry-point group (what ``pip install`` registers),
never by scanning subclasses, so a verifier exists exactly when its distribution is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from rlvr.plugins import load_object
from rlvr.verify.base import Verifier

__all__ = ["ENTRY_POINT_GROUP", "VerifierInitError", "available_verifiers", "load_verifier"]

ENTRY_POINT_GROUP = "rlvr.verifiers"


class VerifierInitError(ValueError):
    """A verifier's own code raised while it was being built (its constructor or factory: a bad kwarg, a
    missing model file), as opposed to a spec that names nothing. The message names the verifier and the
    exception in one line; the original is its ``__cause__``. A ``ValueError`` because, like any bad
    setting, it is fixed in the recipe or on the command line."""


def available_verifiers() -> list[str]:
    """Names of the installed verifiers, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_verifier(
    spec: str, kwargs: Mapping[str, Any] | None = None, base_dir: str | Path | None = None
) -> Verifier:
    """Build a verifier from ``spec`` and ``kwargs``.

    A ``spec`` containing ``:`` is an import path (``pkg.mod:attr`` or ``path/to/file.py:attr``,
    relative paths resolved against ``base_dir`` then the current directory); anything else is an
    entry-point name in the ``rlvr.verifiers`` group. The object found may be a class or factory,
    called with ``kwargs``, or a ready instance, in which case ``kwargs`` must be empty.

    Raises:
        ValueError: unknown or ambiguous name (the valid names are listed), or kwargs given for an
            instance.
        ImportError: the import path does not resolve.
        TypeError: the object built has no callable ``score``.
        VerifierInitError: the class or factory raised (any exception, the original as ``__cause__``).
    """
    kwargs = dict(kwargs or {})
    obj = load_object(spec, base_dir=base_dir) if ":" in spec else _entry_point(spec).load()
    if isinstance(obj, type) or not hasattr(obj, "score"):
        if not callable(obj):
            raise TypeError(
                f"verifier {spec!r} resolved to {obj!r}, which is neither a class, a factory "
                "nor an object with a score() method"
            )
        try:
            verifier = obj(**kwargs)
        except VerifierInitError as exc:  # a nested verifier (a compose term): keep its one-line message
            raise VerifierInitError(f"verifier {spec!r}: {exc}") from exc
        except Exception as exc:
            raise VerifierInitError(f"verifier {spec!r} could not be built: {type(exc).__name__}: {exc}") from exc
    elif kwargs:
        raise ValueError(f"verifier {spec!r} is an instance; it takes no kwargs (got {sorted(kwargs)})")
    else:
        verifier = obj
    if not callable(getattr(verifier, "score", None)):
        raise TypeError(f"verifier {spec!r} built {type(verifier).__name__}, which has no callable score()")
    return verifier


def _entry_point(name: str) -> EntryPoint:
    matches = {ep.value: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name}
    if not matches:
        valid = ", ".join(available_verifiers()) or "none installed"
        raise ValueError(
            f"unknown verifier {name!r}; installed verifiers: {valid} "
            "(or give an import path 'pkg.module:attr' / 'path/to/file.py:attr')"
        )
    if len(matches) > 1:
        raise ValueError(f"verifier name {name!r} is registered by several packages: {sorted(matches)}")
    return next(iter(matches.values()))
