"""Resolve ``module:attr`` / ``path/to/file.py:attr`` references: rlvr's one escape hatch.

Verifiers, losses, filters and rollout hooks can all be given as an import path plus kwargs. Every
one of them goes through :func:`load_object`, so the reference syntax and the error messages are the
same everywhere and a typo fails with the reference named, before any engine starts.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["load_object"]

_SYNTAX = "expected 'package.module:attr' or 'path/to/file.py:attr'"


def load_object(spec: str, base_dir: str | Path | None = None) -> Any:
    """Return the object named by ``spec``.

    ``spec`` is ``package.module:attr`` (imported from ``sys.path``) or ``path/to/file.py:attr``. A
    relative file path is looked up under ``base_dir`` first (typically the directory of the recipe
    that names it, so recipes stay relocatable), then under the current directory. ``attr`` may be
    dotted (``Class.factory``).

    Raises:
        ValueError: ``spec`` is malformed.
        ImportError: the file or module is missing, fails to import, or lacks the attribute.
    """
    if not isinstance(spec, str):
        raise ValueError(f"plugin reference must be a string, got {type(spec).__name__}: {spec!r}")
    target, sep, attr_path = spec.strip().rpartition(":")
    if not sep or not target or not attr_path:
        raise ValueError(f"malformed plugin reference {spec!r}: {_SYNTAX}")
    if not all(part.isidentifier() for part in attr_path.split(".")):
        raise ValueError(f"malformed plugin reference {spec!r}: {attr_path!r} is not an attribute name")

    if target.endswith(".py"):
        module = _import_file(_resolve_file(spec, target, base_dir), spec)
    elif not all(part.isidentifier() for part in target.split(".")):
        raise ValueError(
            f"malformed plugin reference {spec!r}: {target!r} is neither a module nor a .py file"
        )
    else:
        module = _import_module(target, spec)

    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(
                f"plugin reference {spec!r}: {module.__name__!r} has no attribute {attr_path!r}"
            ) from None
    return obj


def _resolve_file(spec: str, target: str, base_dir: str | Path | None) -> Path:
    path = Path(target).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path(base_dir) / path] if base_dir is not None else []
        candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ImportError(f"plugin reference {spec!r}: file not found (tried {tried})")


def _import_file(path: Path, spec: str) -> ModuleType:
    """Import a file under a name derived from its absolute path.

    The module is registered in ``sys.modules`` so that dataclasses, pickling and a second load of
    the same file (which returns the same module) behave as for any imported module.
    """
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_rlvr_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"plugin reference {spec!r}: cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if not isinstance(exc, Exception):
            raise
        raise ImportError(f"plugin reference {spec!r}: importing {path} failed: {exc!r}") from exc
    return module


def _import_module(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Distinguish "the named module does not exist" from "it exists but imports something missing".
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ImportError(f"plugin reference {spec!r}: no module named {exc.name!r}") from exc
        raise ImportError(f"plugin reference {spec!r}: importing {name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ImportError(f"plugin reference {spec!r}: importing {name!r} failed: {exc!r}") from exc
