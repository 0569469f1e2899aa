"""A NaN in the loss skips the update, under every ZeRO stage and with two data-parallel ranks: the
weights stay bit-identical, the skip is counted (``actor/skipped_updates``), and the next finite batch
trains normally (DeepSpeed's overflow check under ZeRO 1-3; rlvr's own gradient check without ZeRO)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import ray
import torch

from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import init_ray
from tests.conftest import DEFAULT_RECIPE


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    init_ray(None, None, 3)  # 2 learner ranks + the engine slot the layout reserves
    yield
    ray.shutdown()


def _rows(tokenizer, advantage: float) -> TrainRows:
    """One group of 8 responses with old log-probs equal to nothing in particular (ratio != 1)."""
    p = tokenizer("Q: 57+68=")["input_ids"]
    ids, plens, adv = [], [], []
    for k, answer in enumerate(["125", "15", "125", "1", "83", "73", "8", "783"]):
        r = tokenizer(answer)["input_ids"] + [tokenizer.eos_token_id]
        ids.append(p + r)
        plens.append(len(p))
        adv.append([advantage * (1 if k % 2 else -1)] * len(r))
    rows = TrainRows(input_ids=ids, prompt_lens=plens, advantages=adv)
    rows.old_logprobs = [[-1.0] * len(a) for a in adv]
    return rows


def _weights(learners: LearnerGroup) -> dict[str, torch.Tensor]:
    names = [n for n, _ in learners.weight_manifest()]
    return {k: v.clone() for k, v in ray.get(learners.export_weights(names)).items()}


@pytest.mark.parametrize("stage, ranks", [(0, 1), (2, 2), (3, 1)])
def test_nan_loss_skips_the_update(ray_session: None, tmp_path, stage: int, ranks: int) -> None:
    from transformers import AutoTokenizer

    cfg = load_recipe(DEFAULT_RECIPE, [
        f"run.output_dir={tmp_path}", f"learner.zero_stage={stage}", f"learner.num_ranks={ranks}",
        "algorithm.kl_coef=0", "algorithm.kl_placement=none", "algorithm.mini_batches=1",
        "rollout.prompts_per_step=2", "rollout.n=8"])
    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    placement = Placement.reserve(cfg, critic=False, timeout_s=60)
    learners = LearnerGroup(cfg, timeout_s=600, placement=placement)
    try:
        learners.setup()
        before = _weights(learners)
        bad = learners.train(_rows(tok, float("nan")), group_sizes=[8])
        assert bad["actor/skipped_updates"] == bad["actor/optimizer_steps"] == 1.0, bad
        assert math.isfinite(bad["actor/grad_norm"])
        after = _weights(learners)
        assert all(torch.equal(before[k], after[k]) for k in before), "a skipped update changed the weights"
        good = learners.train(_rows(tok, 1.0), group_sizes=[8])
        assert good["actor/skipped_updates"] == 0.0 and good["actor/grad_norm"] > 0, good
        trained = _weights(learners)
        assert any(not torch.equal(before[k], trained[k]) for k in before)
        assert all(torch.isfinite(v).all() for v in trained.values())
    finally:
        learners.shutdown()
        placement.remove()
