"""The one registry of loss modules.

`ALGORITHM_NAMES` is importable without torch (the config validates names against it); the modules
themselves import lazily. A recipe may also name ``package.module:factory`` or ``file.py:factory``;
the factory takes the `AlgorithmConfig` and returns an `Algorithm`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlvr.algorithms.base import Algorithm
    from rlvr.config.schema import AlgorithmConfig

_MODULES: dict[str, str] = {
    "grpo": "rlvr.algorithms.grpo:GRPO",
}
ALGORITHM_NAMES: tuple[str, ...] = tuple(sorted(_MODULES))


def get_algorithm(cfg: AlgorithmConfig) -> Algorithm:
    """Instantiate the loss module named by ``cfg.name``."""
    if cfg.name in _MODULES:
        module, _, attr = _MODULES[cfg.name].partition(":")
        factory = getattr(importlib.import_module(module), attr)
    elif ":" in cfg.name:
        from rlvr.plugins import load_object

        factory = load_object(cfg.name)
    else:
        raise ValueError(f"unknown algorithm {cfg.name!r}; valid: {', '.join(ALGORITHM_NAMES)}")
    return factory(cfg)
