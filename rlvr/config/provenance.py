"""Where a recipe's numbers come from: ``rlvr validate --provenance``.

A recipe that reproduces a paper is only as trustworthy as the reader's ability to check it, field by
field, against the authors' scripts. Each recipe may carry a ``provenance:`` mapping from a field path
(``algorithm.warmup_steps``) or a section prefix (``learner``) to its source (repository, file and line,
or paper section). The audit lists every field the recipe sets and every field its algorithm preset sets
away from the schema default, each with the most specific source that covers it, and names the fields
left without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlvr.config.loader import load_recipe
from rlvr.config.schema import AlgorithmConfig, RecipeConfig

__all__ = ["Entry", "audit", "check_paths", "format_audit"]


@dataclass(frozen=True)
class Entry:
    """One field: its path, resolved value, who set it ("recipe" or "preset <name>") and its source."""

    path: str
    value: Any
    origin: str
    source: str | None


def audit(path: str | Path) -> tuple[RecipeConfig, list[Entry]]:
    """The recipe at ``path``, and an `Entry` for every field it or its preset sets."""
    cfg = load_recipe(path)
    raw = yaml.safe_load(Path(path).read_text()) or {}
    raw.pop("provenance", None)
    written = dict(_leaves(raw))
    resolved = cfg.model_dump(mode="json")
    entries = [Entry(p, _get(resolved, p), "recipe", _source(cfg.provenance, p)) for p in written]
    defaults = AlgorithmConfig.model_construct().model_dump(mode="json")
    preset = f"preset {cfg.algorithm.name}"
    for key, value in resolved["algorithm"].items():
        p = f"algorithm.{key}"
        if p not in written and value != defaults.get(key):
            entries.append(Entry(p, value, preset, _source(cfg.provenance, p)))
    return cfg, entries


def format_audit(path: str | Path, entries: list[Entry]) -> str:
    """A table a reader can check against the sources in a minute, then the fields without a source."""
    width = max((len(e.path) for e in entries), default=10)
    lines = [f"{path}: {len(entries)} fields set by the recipe or its preset"]
    for e in entries:
        value = yaml.safe_dump(e.value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
        value = value if len(value) <= 48 else value[:45] + "..."
        lines.append(f"  {e.path:<{width}}  {value:<48}  {e.origin:<14}  {e.source or '(no source)'}")
    missing = [e.path for e in entries if e.source is None]
    lines.append(f"  without a source: {', '.join(missing)}" if missing else "  every field has a source")
    return "\n".join(lines)


def check_paths(provenance: dict[str, str]) -> None:
    """Raise ValueError for a provenance key that names no recipe field (a typo would hide a field)."""
    bad = [key for key in provenance if not _is_field(key)]
    if bad:
        raise ValueError(f"provenance names unknown fields: {', '.join(bad)} (keys are field paths such as "
                         "algorithm.lr or section names such as learner)")


def _is_field(path: str) -> bool:
    return _walk(path) is not False


def _walk(path: str) -> Any:
    """What ``path`` names in the schema: a section class, None for a plain value (or a place inside a
    free-form mapping such as ``verifier_kwargs``), False for no field. A ``dict[str, Section]`` field
    takes any key, then the section's fields."""
    node: Any = RecipeConfig
    keyed = False  # the previous part was a dict[str, Section] field: this part is a free key
    for part in path.split("."):
        if keyed:
            keyed = False
            continue
        if node is None:
            return None
        field = node.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if getattr(annotation, "__origin__", None) is dict:
            value = annotation.__args__[-1]
            node, keyed = (value, True) if hasattr(value, "model_fields") else (None, False)
        else:
            node = _model_of(annotation)
    return None if keyed else node


def _model_of(annotation: Any) -> Any:
    """The schema section class an annotation holds (``X`` or ``X | None``), None for a plain value."""
    return next((a for a in (annotation, *getattr(annotation, "__args__", ())) if hasattr(a, "model_fields")), None)


def _source(provenance: dict[str, str], path: str) -> str | None:
    """The source of the longest provenance key that is ``path`` or a section above it."""
    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        key = ".".join(parts[:k])
        if key in provenance:
            return provenance[key]
    return None


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted paths of the values a recipe writes; a field holding a mapping (verifier_kwargs) or a list
    counts as one field when it is not a schema section."""
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and _is_section(path):
            out += _leaves(value, path + ".")
        else:
            out.append((path, value))
    return out


def _is_section(path: str) -> bool:
    node = _walk(path)
    return node is not None and node is not False or _is_keyed(path)


def _is_keyed(path: str) -> bool:
    """A ``dict[str, Section]`` field (``reward.verifiers``) whose entries are sections too."""
    parent, _, name = path.rpartition(".")
    node = _walk(parent) if parent else RecipeConfig
    field = node.model_fields.get(name) if node not in (None, False) else None
    annotation = field.annotation if field is not None else None
    return getattr(annotation, "__origin__", None) is dict and hasattr(annotation.__args__[-1], "model_fields")


def _get(tree: Any, path: str) -> Any:
    for part in path.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree
