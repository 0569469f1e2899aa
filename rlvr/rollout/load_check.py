"""Which of an engine's parameters a weight sync did not write, and which of vLLM's reload warnings matter.

Why: a sync rewrites the engine's weights in place, tensor by tensor, from what the learner sends. A
parameter the learner never sends (one the Hugging Face model keeps as a buffer, e.g. an MoE router's
``e_score_correction_bias``) keeps its start-up value while the engine stays awake, but comes back as
uninitialised memory after a level-2 sleep, which discards weights. vLLM only says so with a warning
(``<LayerClass>: Failed to load weights``) that also fires, harmlessly, for layers that hold no
checkpoint weights at all (rotary embeddings: a cos/sin cache that vLLM restores itself).

So every vLLM worker of a rollout engine records the parameter names its model's ``load_weights``
reports during a sync (`install`, run once through ``collective_rpc``); `take_unloaded` returns the
parameters that got nothing since the last call, by name. `rlvr.weight_sync` decides with that list
(sleep level, error), not with the warning; `WeightlessLayerFilter` keeps the warning for layers that
hold weights and drops it for the known weightless ones, so the engine log shows only ones to read.

The functions taking ``worker`` run inside vLLM's workers (the engine's process, or its tensor-parallel
worker processes): they must stay module-level so vLLM can send them by reference.
"""

from __future__ import annotations

import logging
import re
from typing import Any

RELOAD_LOGGER = "vllm.model_executor.model_loader.reload.layerwise"
"""The vLLM logger of the layer-wise reload that every in-place weight update goes through (0.32)."""

_FAILED = re.compile(r"^(?P<layer>\w+): Failed to load weights$")

WEIGHTLESS_LAYERS = ("RotaryEmbedding", "RoPE")
"""Class-name suffixes of vLLM layers that hold no checkpoint weights: vLLM's rotary-embedding family
(``RotaryEmbedding``, ``Llama3RotaryEmbedding``, ``MRotaryEmbedding``, ``YaRNScalingRotaryEmbedding``,
``Phi3LongRoPEScaledRotaryEmbedding``, ...) keeps only a cos/sin cache, a buffer vLLM saves and restores
across sleep, so "Failed to load weights" for them is expected on every sync."""


def is_weightless_layer(class_name: str) -> bool:
    return class_name.endswith(WEIGHTLESS_LAYERS)


class WeightlessLayerFilter(logging.Filter):
    """Drops vLLM's ``<Layer>: Failed to load weights`` warning for weightless layers (`WEIGHTLESS_LAYERS`);
    keeps it for every other layer and lets every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        m = _FAILED.match(record.getMessage())
        return not (m and is_weightless_layer(m.group("layer")))


def _model(worker: Any) -> Any:
    return worker.model_runner.get_model()


def install(worker: Any) -> int:
    """Wrap this worker's ``model.load_weights`` to record the parameter names each call reports, and
    filter the reload warnings. Idempotent. Returns the model's parameter count (0 when the model's
    ``load_weights`` reports no names: then nothing can be checked)."""
    logger = logging.getLogger(RELOAD_LOGGER)
    if not any(isinstance(f, WeightlessLayerFilter) for f in logger.filters):
        logger.addFilter(WeightlessLayerFilter())
    model = _model(worker)
    if getattr(model, "_rlvr_loaded", None) is None:
        original = model.load_weights
        loaded: set[str] = set()

        def recording_load_weights(weights: Any, *args: Any, **kwargs: Any) -> Any:
            names = original(weights, *args, **kwargs)
            if names is not None:
                loaded.update(names)
            return names

        # Instance attributes: vLLM's reload and its weight-transfer engines call ``model.load_weights``.
        object.__setattr__(model, "load_weights", recording_load_weights)
        object.__setattr__(model, "_rlvr_loaded", loaded)
    return sum(1 for _ in model.named_parameters())


def take_unloaded(worker: Any) -> list[str]:
    """Parameters of this worker's model that no ``load_weights`` call wrote since the last call (sorted
    vLLM names; tensor-parallel shards are named as the whole parameter), and start counting afresh.
    A model whose ``load_weights`` reported nothing at all gives [] (nothing to compare with)."""
    model = _model(worker)
    loaded: set[str] = model._rlvr_loaded
    if not loaded:
        return []
    names = {_base_name(n) for n, _ in model.named_parameters()}
    missing = sorted(names - {_base_name(n) for n in loaded})
    loaded.clear()
    return missing


def _base_name(name: str) -> str:
    """vLLM's LoRA wrapper inserts ``base_layer``; the checkpoint names (and load_weights' report) do not."""
    return name.replace(".base_layer.", ".")
