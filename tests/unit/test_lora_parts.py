"""LoRA's parts without engines: the recipe rules, peft wrapping (only the adapter trains, the wrapped model
starts as the base), the adapter in peft's saved format, merged weights equal to the adapted model, and the
adapter directories ``rlvr eval`` takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr.config import load_recipe
from rlvr.config.schema import LoraConfig
from rlvr.learner import lora
from rlvr.learner.sync_source import sync_params
from rlvr.rollout.worker import transfer_settings, vllm_lora_rank
from tests.conftest import DEFAULT_RECIPE, ROOT, TINY, tied_tiny_model

LORA_RECIPE = ROOT / "recipes" / "tiny_arith_grpo_lora.yaml"


def _model(path: Path | None = None) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path or (TINY / "model"), dtype=torch.float32)


def _randomise_adapter(model: torch.nn.Module, seed: int = 0) -> None:
    """peft starts B at 0 (no change); give every trainable tensor a visible value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in lora.trainable(model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def _logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.tensor([[5, 17, 40, 41, 3, 9, 60, 61, 62]])
    with torch.no_grad():
        return model(input_ids=ids).logits


# ---- recipe rules --------------------------------------------------------------------------------


def test_the_lora_recipe_resolves_and_syncs_the_adapter() -> None:
    cfg = load_recipe(LORA_RECIPE)
    assert cfg.model.lora is not None and cfg.model.lora.sync_mode == "adapter"
    settings = transfer_settings(cfg)
    assert settings["weight_transfer"] == "reload" and settings["sleep"] == "off"
    assert settings["lora_rank"] == cfg.model.lora.r
    assert transfer_settings(load_recipe(DEFAULT_RECIPE))["lora_rank"] is None


@pytest.mark.parametrize(("override", "message"), [
    ("rollout.weight_transfer=nccl", "LoRA syncs through Ray's object store"),
    ("rollout.sleep=on", "drop the base weights"),
    ("rollout.vllm={max_lora_rank: 64}", "set by rlvr from model.lora"),
    ("model.lora.target_modules=[]", "target_modules is empty"),
    ("model.lora.r=0", "model.lora.r"),
])
def test_lora_settings_that_cannot_work_are_refused(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_recipe(LORA_RECIPE, [override])


def test_modules_to_save_syncs_merged_and_cannot_go_as_an_adapter() -> None:
    assert LoraConfig(modules_to_save=["lm_head"]).sync_mode == "merged"
    assert LoraConfig(sync="merged").sync_mode == "merged"
    with pytest.raises(ValueError, match="cannot carry model.lora.modules_to_save"):
        LoraConfig(modules_to_save=["lm_head"], sync="adapter")
    cfg = load_recipe(LORA_RECIPE, ["model.lora.modules_to_save=[lm_head]"])
    assert transfer_settings(cfg)["lora_rank"] is None  # merged: the engines run without LoRA


def test_merge_lora_needs_an_adapter() -> None:
    with pytest.raises(ValueError, match="checkpoint.merge_lora=true needs model.lora"):
        load_recipe(DEFAULT_RECIPE, ["checkpoint.merge_lora=true"])


def test_engines_take_the_smallest_vllm_rank_that_holds_the_adapter() -> None:
    assert [vllm_lora_rank(r) for r in (1, 2, 8, 9, 16, 17, 300, 512)] == [1, 8, 8, 16, 16, 32, 320, 512]
    with pytest.raises(ValueError, match="up to 512"):
        vllm_lora_rank(513)


# ---- wrapping, names, merging -----------------------------------------------------------------------


def test_only_the_adapter_trains_and_the_wrapped_model_starts_as_the_base() -> None:
    base = _model()
    expected = _logits(base)
    wrapped = lora.wrap(base, LoraConfig(r=4, alpha=8))
    names = [n for n, _ in lora.trainable(wrapped)]
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    # all-linear: the 7 projections of each of the 4 decoder layers, not the output layer
    assert len(names) == 2 * 7 * 4 and not any("lm_head" in n for n in names)
    trained = sum(p.numel() for _, p in lora.trainable(wrapped))
    total = sum(p.numel() for p in wrapped.parameters())
    assert trained < 0.1 * total
    assert torch.equal(_logits(wrapped), expected)  # B = 0: exactly the base model


def test_the_adapter_state_is_peft_format_and_loads_back() -> None:
    from peft import PeftModel

    wrapped = lora.wrap(_model(), LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    _randomise_adapter(wrapped)
    state = lora.adapter_state(wrapped, {n: p.detach().clone() for n, p in lora.trainable(wrapped)})
    assert len(state) == 2 * 2 * 4 and all(".default." not in k for k in state)
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in state
    config = lora.adapter_config(wrapped, "/models/base")
    assert config["base_model_name_or_path"] == "/models/base" and config["r"] == 4
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]

    import tempfile

    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as d:
        save_file(state, f"{d}/adapter_model.safetensors")
        Path(d, "adapter_config.json").write_text(json.dumps(config))
        loaded = PeftModel.from_pretrained(_model(), d)
    assert torch.allclose(_logits(loaded), _logits(wrapped), atol=1e-6)
    assert not torch.allclose(_logits(loaded), _logits(_model()), atol=1e-3)


@pytest.mark.parametrize("case", ["untied", "tied", "modules_to_save"])
def test_merged_weights_are_the_adapted_model(case: str, tmp_path: Path) -> None:
    """W + (alpha/r) B A under the base model's own names (a tied output layer listed under its own name, a
    fully trained module replacing its original), loaded into a plain model: the same logits."""
    from transformers import AutoModelForCausalLM

    path = tied_tiny_model(str(TINY / "model"), tmp_path) if case == "tied" else (TINY / "model")
    settings = LoraConfig(r=8, alpha=16, rslora=True, modules_to_save=["lm_head"] if case == "modules_to_save" else [])
    wrapped = lora.wrap(_model(path), settings)
    _randomise_adapter(wrapped)
    sources = lora.merged_sources(wrapped, sync_params)
    with torch.no_grad():
        merged = {s.name: s.value().clone() for s in sources}
    plain = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert set(merged) == {n for n, _ in sync_params(plain)}  # nothing missing, nothing of peft's
    plain.load_state_dict(merged)  # strict: every weight of the plain model, by its own name
    if case == "tied":
        assert "lm_head.weight" in merged
    assert torch.allclose(_logits(plain), _logits(wrapped), atol=1e-5)
    assert not torch.allclose(_logits(plain), _logits(_model(path)), atol=1e-3)


# ---- rlvr eval takes an adapter --------------------------------------------------------------------------


def test_eval_resolves_an_adapter_export_and_its_base(tmp_path: Path) -> None:
    from rlvr.eval_model import EvalError, _adapter, resolve_model

    hf = tmp_path / "run" / "checkpoints" / "step_000002" / "hf"
    hf.mkdir(parents=True)
    (hf.parent / "COMPLETE").write_text("")
    (hf / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8,
                                                        "base_model_name_or_path": str(TINY / "model")}))
    assert resolve_model(str(hf.parent))[0] == hf
    assert resolve_model(str(hf))[0] == hf
    assert _adapter(hf)["r"] == 8
    (hf / "merged").mkdir()
    (hf / "merged" / "config.json").write_text("{}")
    assert resolve_model(str(hf / "merged"))[0] == hf / "merged" and _adapter(hf / "merged") is None
    (hf / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    with pytest.raises(EvalError, match="names no base_model_name_or_path"):
        _adapter(hf)
    empty = tmp_path / "run" / "checkpoints" / "step_000003"
    empty.mkdir()
    (empty / "COMPLETE").write_text("")
    with pytest.raises(EvalError, match="no Hugging Face model or LoRA adapter"):
        resolve_model(str(empty))
