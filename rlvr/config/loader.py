"""Load a recipe: YAML file + dotted command-line overrides -> validated `RecipeConfig`.

Relative paths in a recipe file resolve against the recipe's folder (so recipes can point at data
next to them whatever the working directory); relative paths given as overrides resolve against the
working directory, like any other command-line path.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rlvr.config.schema import RecipeConfig


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``1e-6`` (no dot) is a string; read it as a float as YAML 1.2,
    JSON and every user typing ``algorithm.lr=1e-6`` expect."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the offending field."""


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["algorithm.lr=1e-6", "data.train=[{path: a.jsonl}]"]`` -> nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError(f"override {item!r} is not of the form dotted.key=value")
        try:
            value = _yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise RecipeError(f"override {key}: value {raw!r} is not valid YAML ({err})") from None
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"override {key}: {part!r} was already set to a value")
            node = child
        node[leaf] = value
    return tree


def _absolutize(tree: dict[str, Any], base: Path) -> None:
    """Make the recipe's path fields absolute against ``base`` (in place)."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str((base / value).resolve())
        return value

    model = tree.get("model")
    if isinstance(model, dict) and "path" in model:
        model["path"] = fix(model["path"])
    for section, key in (("data", "train"), ("eval", "data")):
        sources = tree.get(section, {}).get(key) if isinstance(tree.get(section), dict) else None
        for src in sources if isinstance(sources, list) else []:
            if isinstance(src, dict) and "path" in src:
                src["path"] = fix(src["path"])
    reward = tree.get("reward")
    if isinstance(reward, dict):
        _absolutize_verifier_files(reward, fix)
        server = reward.get("judge_server")
        model = server.get("model") if isinstance(server, dict) else None
        if isinstance(model, str) and (base / model).exists():  # a local directory, not a hub id
            server["model"] = fix(model)


def _absolutize_verifier_files(node: Any, fix: Any) -> None:
    """Every ``verifier: path/to/file.py:attr`` in the reward section, nested ones (compose terms) too."""
    if isinstance(node, list):
        for item in node:
            _absolutize_verifier_files(item, fix)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "verifier" and isinstance(value, str) and ".py:" in value:
                file, _, attr = value.rpartition(":")
                node[key] = f"{fix(file)}:{attr}"
            else:
                _absolutize_verifier_files(value, fix)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: nested mappings merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _valid_keys(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the schema model that holds ``loc`` (for 'unknown key' messages)."""
    model: type[BaseModel] = RecipeConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        nxt = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is None:
            return []
        model = nxt
    return sorted(model.model_fields)


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc) or "recipe"
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key; valid keys here: {', '.join(_valid_keys(loc))}")
        elif e["type"] == "missing":
            lines.append(f"{where}: required field is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            shown = f" (got {got!r})" if not isinstance(got, (dict, list)) and got is not None else ""
            lines.append(f"{where}: {msg}{shown}")
    return "invalid recipe:\n  " + "\n  ".join(lines)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RecipeConfig:
    """Read, merge and validate a recipe; raises `RecipeError` naming the offending field."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    try:
        raw = _yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections, got {type(raw).__name__}")
    _absolutize(raw, path.resolve().parent)
    over = parse_overrides(overrides or [])
    _absolutize(over, Path.cwd())
    try:
        return RecipeConfig.model_validate(deep_merge(raw, over))
    except ValidationError as err:
        raise RecipeError(f"{path}: {format_validation_error(err)}") from None


def dump_recipe(cfg: RecipeConfig) -> str:
    """The fully resolved recipe as YAML (written into every run directory)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
