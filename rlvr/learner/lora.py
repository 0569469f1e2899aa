"""LoRA on the learner side (Hu et al. 2021, arXiv:2106.09685), with ``peft``: wrap the policy, name its
tensors the way the engines and the Hugging Face exports take them, and merge ``W + (alpha/r) B A`` where
merged weights are wanted.

Three name spaces meet here. Inside the learner a parameter is peft's module path
(``base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight``). vLLM and ``peft`` load an
adapter from peft's saved format, the same path without the adapter name (``...q_proj.lora_A.weight``,
`adapter_state`). A merged export uses the base model's own Hugging Face names (``model.layers.0.self_attn.
q_proj.weight``, `merged_sources`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from rlvr.config.schema import LoraConfig

ADAPTER = "default"  # peft's name for the single adapter rlvr trains


def wrap(model: torch.nn.Module, cfg: LoraConfig) -> torch.nn.Module:
    """The peft model around ``model``: base weights frozen, the adapter (and ``modules_to_save``) trainable.
    peft initialises ``B = 0``, so the wrapped model starts as exactly the base model: the engines, which start
    without an adapter, sample the learner's policy before the first sync."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_cfg = PeftLoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules,
        modules_to_save=cfg.modules_to_save or None, use_rslora=cfg.rslora, bias="none", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(peft name, parameter) of everything the optimizer holds, in module order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def numel(p: torch.Tensor) -> int:
    return int(getattr(p, "ds_numel", p.numel()))  # ZeRO-3 partitions the local numel


def adapter_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """peft's saved format (what ``adapter_model.safetensors`` holds and vLLM loads) of ``tensors``, given by
    peft name: peft's own ``get_peft_model_state_dict`` does the renaming, so the names follow peft."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, state_dict=tensors, adapter_name=ADAPTER)


def adapter_config(model: torch.nn.Module, base: str) -> dict[str, Any]:
    """The ``adapter_config.json`` contents, with ``base_model_name_or_path`` = ``base`` (the recipe's model)."""
    cfg = model.peft_config[ADAPTER].to_dict()
    cfg["base_model_name_or_path"] = base
    cfg["inference_mode"] = True
    return json.loads(json.dumps(cfg, default=lambda v: sorted(v) if isinstance(v, set) else str(v)))


@dataclass
class MergedSource:
    """One weight of the merged model: its Hugging Face name, the learner parameter it starts from and, for an
    adapted layer, the peft layer whose ``get_delta_weight`` is added."""

    name: str
    param: torch.nn.Parameter
    layer: Any = None

    def gather(self) -> list[torch.nn.Parameter]:
        """Every parameter the merged value reads (ZeRO-3 gathers them together)."""
        if self.layer is None:
            return [self.param]
        return [self.param, self.layer.lora_A[ADAPTER].weight, self.layer.lora_B[ADAPTER].weight]

    def value(self) -> torch.Tensor:
        """``W + scale * B @ A`` (peft's own delta, in the parameter's dtype), or the parameter itself."""
        if self.layer is None:
            return self.param.detach()
        return self.param.detach() + self.layer.get_delta_weight(ADAPTER).to(self.param.dtype)


def merged_sources(model: torch.nn.Module, sync_params: Any) -> list[MergedSource]:
    """The merged model's weights in the base model's order and names (``sync_params``: the learner's list of
    what an engine receives, with a tied output layer under its own name). An adapted layer's frozen
    ``base_layer.weight`` becomes ``weight`` plus the delta; a ``modules_to_save`` copy replaces its original;
    the adapter's own tensors are not listed."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    out: list[MergedSource] = []
    for name, param in sync_params(base):
        parts = name.split(".")
        if any(p.startswith("lora_") for p in parts) or "original_module" in parts:
            continue
        if "modules_to_save" in parts:
            i = parts.index("modules_to_save")
            out.append(MergedSource(".".join(parts[:i] + parts[i + 2:]), param))
            continue
        if "base_layer" in parts:
            i = parts.index("base_layer")
            layer = base.get_submodule(".".join(parts[:i]))
            adapted = isinstance(layer, LoraLayer) and ADAPTER in layer.lora_A and parts[i + 1] == "weight"
            out.append(MergedSource(".".join(parts[:i] + parts[i + 1:]), param, layer if adapted else None))
            continue
        out.append(MergedSource(name, param))
    return out
