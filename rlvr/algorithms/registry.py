"""The one registry of loss modules.

Each name is a preset module in ``rlvr/algorithms/presets/`` (torch-free defaults for the parts);
the loss itself is built from the resolved `AlgorithmConfig` by `get_algorithm`. A recipe may also
name ``package.module:factory`` or ``file.py:factory``: the factory takes the `AlgorithmConfig` and
returns an object with the `Algorithm` interface (``rlvr.algorithms.base``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlvr.algorithms.base import Algorithm
    from rlvr.config.schema import AlgorithmConfig

ALGORITHM_NAMES: tuple[str, ...] = (
    "cispo", "clip_cov", "dapo", "dppo_kl", "dppo_tv", "drgrpo", "gdpo", "gmpo", "gpg", "grpo", "gspo", "kl_cov",
    "lite_ppo", "nft", "opo", "passk", "ppo", "reinforce_pp", "reinforce_pp_baseline", "remax", "rloo", "sapo",
)


def is_import_path(name: str) -> bool:
    return ":" in name


def preset_defaults(name: str) -> dict[str, Any]:
    """The preset's part defaults (empty for a custom import path)."""
    if is_import_path(name):
        return {}
    if name not in ALGORITHM_NAMES:
        raise ValueError(f"unknown algorithm {name!r}; valid: {', '.join(ALGORITHM_NAMES)} (or pkg.module:factory)")
    return dict(importlib.import_module(f"rlvr.algorithms.presets.{name}").PRESET)


def get_algorithm(cfg: AlgorithmConfig, max_new_tokens: int | None = None) -> Algorithm:
    """Build the loss module for a resolved config. ``max_new_tokens`` is the default constant of
    ``seq-mean-token-sum-norm`` (Dr. GRPO divides by the generation budget)."""
    if is_import_path(cfg.name):
        from rlvr.plugins import load_object

        return load_object(cfg.name)(cfg, **cfg.kwargs)
    preset_defaults(cfg.name)  # unknown names fail here, listing the valid ones
    from rlvr.algorithms.losses import NFTLoss, PolicyGradientLoss

    cls = NFTLoss if cfg.loss == "nft" else PolicyGradientLoss
    return cls(cfg, max_new_tokens=max_new_tokens)
