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

__all__ = ["ENTRY_POINT_GROUP", "available_verifiers", "load_verifier"]

ENTRY_POINT_GROUP = "rlvr.verifiers"


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
    """
    kwargs = dict(kwargs or {})
    obj = load_object(spec, base_dir=base_dir) if ":" in spec else _entry_point(spec).load()
    if isinstance(obj, type) or not hasattr(obj, "score"):
        if not callable(obj):
            raise TypeError(
                f"verifier {spec!r} resolved to {obj!r}, which is neither a class, a factory "
                "nor an object with a score() method"
            )
        verifier = obj(**kwargs)
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
