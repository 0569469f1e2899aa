"""GPU: the weight sync through vLLM's own weight-transfer API, and vLLM sleep mode.

* CUDA IPC, colocated on one GPU (learner rank and engine share it), with sleep on, on a tied-embedding
  model (vLLM keeps its own output layer after an update: the learner must send ``lm_head.weight``): after
  a rollout the engine sleeps at level 2 and frees its GPU memory; the sync wakes its weights, transfers,
  wakes its KV cache; generation works again, and the engine reports no parameter the sync left alone.
* LoRA (``model.lora``), colocated on one GPU: the adapter alone goes to the engine, served by vLLM's GPU
  LoRA kernels under a fresh id per sync.
* NCCL, split over two GPUs (learner rank 0 broadcasts to the engine on the other device).
* NCCL with ZeRO-3 and 3 learner ranks (4 GPUs): rank 0 pulls the weights inside vLLM's packed sender on a
  side stream while ranks 1-2 gather on their default stream (`rlvr.learner.sync_source`).

In both, after an update that moved the policy and a sync, the engine scores fixed sequences as
the learner does (teacher-forced log-probs), twice in a row. Skipped without CUDA.

Tolerance: both sides run float32 weights. On CPU the two sides agree to ~1e-6 (1e-4 bound); GPU
kernels reorder sums differently again (vLLM's attention backends vs torch eager), so 2e-3 here,
still far below what one stale tensor does (> 1e-2, the test also checks the update moved that much).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import ray
import torch

from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import init_ray
from rlvr.rollout.group import RolloutGroup
from rlvr.weight_sync import WeightSync
from tests.conftest import DEFAULT_RECIPE, tied_tiny_model

pytestmark = pytest.mark.gpu

TOL = 2e-3
MOVED = 1e-2


def _max_abs(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys))


@contextmanager
def _run(
    tmp_path: Path, overrides: list[str], cpus: int = 2,
) -> Iterator[tuple[LearnerGroup, RolloutGroup, WeightSync]]:
    cfg = load_recipe(DEFAULT_RECIPE, [
        "algorithm.kl_placement=none", "algorithm.kl_coef=0", "algorithm.lr=5e-4",
        "rollout.prompts_per_step=4", "rollout.n=2", "rollout.gpu_memory_utilization=0.3",
        f"run.output_dir={tmp_path}", *overrides,
    ])
    init_ray(None, None, cpus)
    try:
        placement = Placement.reserve(cfg, critic=False, timeout_s=120)
        learners = LearnerGroup(cfg, timeout_s=600, placement=placement)
        rollouts = RolloutGroup(cfg, max_model_len=64, timeout_s=600, placement=placement)
        rollouts.wait_ready()
        learners.setup()
        yield learners, rollouts, WeightSync(learners, rollouts)
    finally:
        ray.shutdown()


def _rows() -> tuple[TrainRows, list[list[int]], list[int], list[int]]:
    """Two carry problems, each with the right sum (advantage +1) and the carry-less mistake (-1)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(load_recipe(DEFAULT_RECIPE).model.path)
    ids, plens, adv = [], [], []
    for q, pair in (("Q: 57+68=", ("125", "15")), ("Q: 38+45=", ("83", "73"))):
        prompt = tok(q)["input_ids"]
        for text, a in zip(pair, (1.0, -1.0)):
            ids.append(prompt + tok(text)["input_ids"] + [tok.eos_token_id])
            plens.append(len(prompt))
            adv.append(a)
    rows = TrainRows(input_ids=ids, prompt_lens=plens,
                     advantages=[[a] * (len(s) - p) for a, s, p in zip(adv, ids, plens)])
    return rows, ids, plens, [ids[0][:plens[0]]]


def _step_and_check(learners: LearnerGroup, rollouts: RolloutGroup, sync: WeightSync, version: int) -> dict:
    """Rollout -> (sleep) -> update -> sync -> the engine matches the updated learner and generates."""
    rows, ids, plens, prompts = _rows()
    sync.before_rollout()
    vllm_before = rollouts.sequence_logprobs(ids, plens)
    assert _max_abs(vllm_before, learners.compute_logprobs(rows, "policy")) < TOL  # in sync before the update
    sync.after_rollout()
    assert learners.train(rows, group_sizes=[2] * (len(rows) // 2))["actor/grad_norm"] > 0
    learner_after = learners.compute_logprobs(rows, "policy")
    stats = sync(version=version)
    sync.before_rollout()
    vllm_after = rollouts.sequence_logprobs(ids, plens)
    assert _max_abs(vllm_after, vllm_before) > MOVED  # the engine has the new weights...
    assert _max_abs(vllm_after, learner_after) < TOL  # ...exactly the learner's
    groups = rollouts.generate(prompts, n=2, temperature=1.0, top_p=1.0, max_tokens=6, seed=version)
    assert all(s["token_ids"] and len(s["logprobs"]) == len(s["token_ids"]) for s in groups[0])
    assert all(s["weight_version"] == version for s in groups[0])
    assert stats["sync/bytes"] > 1e6 and stats["time/sync_s"] > 0
    return stats


def test_ipc_colocated_with_sleep_on_a_tied_model(tmp_path: Path) -> None:
    """One GPU: the learner rank (ZeRO-3, so the sync gathers shards) and the engine share it."""
    tied = tied_tiny_model(str(load_recipe(DEFAULT_RECIPE).model.path), tmp_path / "tied")
    with _run(tmp_path, ["resources.colocate=true", "rollout.weight_transfer=ipc", "rollout.sleep=on",
                         "learner.zero_stage=3", f"model.path={tied}"]) as (learners, rollouts, sync):
        assert sync.describe().startswith("ipc") and sync.sleep, (
            f"the engines did not get the recipe's transfer settings: {sync.describe()}")
        assert "lm_head.weight" in sync.buckets[-1]
        assert sync.unwritten == [] and sync.sleep_level == 2  # the set-up transfer wrote every parameter
        for version in (1, 2):
            stats = _step_and_check(learners, rollouts, sync, version)
            # asleep, the engine had released its KV cache (~0.3 of the GPU) and weights
            assert stats["sync/freed_bytes"] > 256 * 2**20, stats
            assert stats["time/sleep_s"] > 0 and stats["time/wake_s"] > 0
            assert sync.unwritten == []


def test_lora_adapter_sync_colocated_on_one_gpu(tmp_path: Path) -> None:
    """model.lora on a GPU: vLLM serves the adapter with its GPU LoRA kernels, each sync loads the new adapter
    (through Ray's object store, a fresh LoRA id) and the engine then scores as the learner does; only the
    adapter travels (r=4: 4.2% of the full weights)."""
    with _run(tmp_path, ["resources.colocate=true", "model.lora={r: 4, alpha: 8}", "algorithm.lr=1e-2"]) as (
        learners, rollouts, sync,
    ):
        assert sync.describe().startswith("LoRA adapter only (r=4") and not sync.sleep, sync.describe()
        rows, ids, plens, prompts = _rows()
        for version in (1, 2):
            vllm_before = rollouts.sequence_logprobs(ids, plens)
            assert learners.train(rows, group_sizes=[2] * (len(rows) // 2))["actor/grad_norm"] > 0
            learner_after = learners.compute_logprobs(rows, "policy")
            stats = sync(version=version)
            vllm_after = rollouts.sequence_logprobs(ids, plens)
            assert _max_abs(vllm_after, vllm_before) > MOVED and _max_abs(vllm_after, learner_after) < TOL
            assert 0 < stats["sync/bytes"] <= 0.05 * 4 * 1_067_136
            groups = rollouts.generate(prompts, n=2, temperature=1.0, top_p=1.0, max_tokens=6, seed=version)
            assert all(s["weight_version"] == version and s["token_ids"] for s in groups[0])


def test_nccl_split_over_two_gpus(tmp_path: Path) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("NCCL split needs 2 GPUs: learner rank 0 and the engine must be on different devices "
                    "(NCCL cannot put two ranks of one group on one device)")
    with _run(tmp_path, ["resources.colocate=false", "rollout.weight_transfer=nccl", "rollout.sleep=off"]) as (
        learners, rollouts, sync,
    ):
        assert sync.describe().startswith("nccl") and not sync.sleep, (
            f"the engines did not get the recipe's transfer settings: {sync.describe()}")
        for version in (1, 2):
            stats = _step_and_check(learners, rollouts, sync, version)
            assert "time/sleep_s" not in stats


def test_nccl_with_zero3_and_three_learner_ranks(tmp_path: Path) -> None:
    """Rank 0 gathers inside vLLM's packed NCCL sender (a side stream), ranks 1-2 outside it: every gather must
    still meet on one stream, or the sync hangs until the NCCL watchdog aborts."""
    if torch.cuda.device_count() < 4:
        pytest.skip(f"NCCL with ZeRO-3 and 3 learner ranks needs 4 GPUs (3 ranks + the engine on a device of its "
                    f"own); this machine has {torch.cuda.device_count()}")
    with _run(tmp_path, ["resources.colocate=false", "rollout.weight_transfer=nccl", "rollout.sleep=off",
                         "learner.num_ranks=3", "learner.zero_stage=3"], cpus=4) as (
        learners, rollouts, sync,
    ):
        assert sync.describe().startswith("nccl")
        for version in (1, 2):
            stats = _step_and_check(learners, rollouts, sync, version)
            assert stats["time/sync_s"] < 120, stats
