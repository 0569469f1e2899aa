"""From the recipe's ``reward`` section to the pool's named verifier specs.

Rows name their verifier (``data.verifier_key``); the name is looked up in ``reward.verifiers`` first
and otherwise taken as a spec itself (an entry-point name or import path), so a dataset that mixes
``math`` and ``code`` rows needs no extra configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rlvr.config.schema import JUDGE_SERVER_URL, RewardConfig
from rlvr.verify.pool import VerifierSpec

__all__ = ["DEFAULT_VERIFIER", "build_specs", "verifier_checker"]

DEFAULT_VERIFIER = "default"
"""Pool name of ``reward.verifier``: rows without a verifier of their own use it."""


def build_specs(
    reward: RewardConfig, row_verifiers: Iterable[str | None], judge_url: str | None = None,
    judge_model: str | None = None,
) -> dict[str, VerifierSpec]:
    """``{name: VerifierSpec}`` for the default verifier and every name rows ask for.

    ``judge_url`` replaces ``base_url: judge_server`` in any (nested) kwargs, and ``judge_model`` (the
    name the server serves) fills ``model`` next to it unless the recipe set one.
    """
    def spec_for(name: str, kwargs: dict[str, Any] | None = None) -> VerifierSpec:
        named = reward.verifiers.get(name)
        if named is not None:
            return VerifierSpec(named.verifier, _with_url(named.kwargs, judge_url, judge_model), named.timeout_s)
        return VerifierSpec(name, _with_url(kwargs or {}, judge_url, judge_model))

    specs = {DEFAULT_VERIFIER: spec_for(reward.verifier, reward.verifier_kwargs)}
    for name in sorted({n for n in row_verifiers if n is not None}):
        specs[name] = spec_for(name)
    return specs


def verifier_checker(reward: RewardConfig) -> Callable[[str], str | None]:
    """``check(name)``: what is wrong with a row's verifier name, None when it resolves (declared in
    ``reward.verifiers``, an installed entry point, or an import path that imports). Used to filter rows
    before training, so an unknown name is a counted bad row, not a failure inside a verifier worker."""
    from rlvr.plugins import load_object
    from rlvr.verify.registry import available_verifiers

    installed = set(available_verifiers())

    def check(name: str) -> str | None:
        if name in reward.verifiers or name in installed:
            return None
        if ":" not in name:
            return f"unknown verifier {name!r} (installed: {', '.join(sorted(installed))}; declared: " \
                   f"{', '.join(sorted(reward.verifiers)) or 'none'})"
        try:
            load_object(name)
        except (ImportError, ValueError) as err:
            return f"verifier {name!r} does not import: {err}"
        return None

    return check


def _with_url(value: Any, url: str | None, model: str | None) -> Any:
    if isinstance(value, dict):
        out = {k: _with_url(v, url, model) for k, v in value.items()}
        if out.get("base_url") == JUDGE_SERVER_URL:
            if url is None:
                raise ValueError(f"base_url: {JUDGE_SERVER_URL} needs reward.judge_server to be running")
            out["base_url"] = url
            if model is not None:
                out.setdefault("model", model)
        return out
    if isinstance(value, list):
        return [_with_url(v, url, model) for v in value]
    return value
