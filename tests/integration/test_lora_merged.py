"""LoRA's merged-weights sync on the real stack: with ``modules_to_save`` (here the output layer, trained in full
next to the adapter) vLLM cannot take the adapter alone, so every sync sends ``W + (alpha/r) B A`` and the
trained output layer under the base model's own names through the full-weight reload path. After an update and
a sync the engine (started without LoRA) scores as the learner does, and it reports no parameter left unwritten.
"""

from __future__ import annotations

import pytest
import ray

from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import init_ray
from rlvr.rollout.group import RolloutGroup
from rlvr.sync_probe import SyncProbe
from rlvr.weight_sync import WeightSync
from tests.conftest import ROOT

TOL = 1e-4


def test_modules_to_save_syncs_merged_weights_that_vllm_scores_as_the_learner(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from transformers import AutoTokenizer

    cfg = load_recipe(ROOT / "recipes" / "tiny_arith_grpo_lora.yaml", [
        "model.lora.modules_to_save=[lm_head]", "algorithm.lr=1e-2", "rollout.prompts_per_step=4", "rollout.n=2",
        f"run.output_dir={tmp_path_factory.mktemp('runs')}"])
    assert cfg.model.lora is not None and cfg.model.lora.sync_mode == "merged"
    init_ray(None, None, 2)
    try:
        placement = Placement.reserve(cfg, critic=False, timeout_s=60)
        learners = LearnerGroup(cfg, timeout_s=600, placement=placement)
        rollouts = RolloutGroup(cfg, max_model_len=64, timeout_s=600, placement=placement)
        rollouts.wait_ready()
        info = learners.setup()
        assert info["trainable_params"] == 45_056 + 320 * 128  # the rank-4 adapter + the output layer in full

        tok = AutoTokenizer.from_pretrained(cfg.model.path)
        prompts = [tok(q)["input_ids"] for q in ("Q: 57+68=", "Q: 38+45=")]
        ids = [p + tok(a)["input_ids"] + [tok.eos_token_id] for p, a in zip(prompts, ("125", "73"))]
        plens = [len(p) for p in prompts]
        rows = TrainRows(input_ids=ids, prompt_lens=plens, advantages=[[1.0] * 4, [-1.0] * 3])
        sync = WeightSync(learners, rollouts, probe=SyncProbe.build(cfg.rollout.sync_probe, "float32", prompts))
        assert sync.describe().startswith("LoRA merged") and "modules_to_save is set" in sync.describe()
        names = [n for bucket in sync.buckets for n in bucket]
        assert "lm_head.weight" in names and "model.layers.0.self_attn.q_proj.weight" in names
        assert not any("lora_" in n or "base_layer" in n or "modules_to_save" in n for n in names)

        before = rollouts.sequence_logprobs(ids, plens)
        learners.train(rows, group_sizes=[2] * (len(rows) // 2))
        learner = learners.compute_logprobs(rows, "policy")
        stats = sync(version=1)
        after = rollouts.sequence_logprobs(ids, plens)
        gap = max(abs(x - y) for xs, ys in zip(after, learner) for x, y in zip(xs, ys))
        moved = max(abs(x - y) for xs, ys in zip(after, before) for x, y in zip(xs, ys))
        assert gap < TOL and moved > 1e-2 and stats["sync/logprob_max_abs_diff"] < TOL
        assert stats["sync/bytes"] == 1_067_136 * 4 and sync.unwritten == []  # every weight, merged
    finally:
        ray.shutdown()
