"""The update does not depend on how a mini-batch is split: the loss and the gradients are the same
(1e-6 relative, as a whole-gradient norm) for 1 x 8 and 8 x 1 micro-batches and for 1 or 2
DeepSpeed data-parallel ranks, for every aggregation mode's normaliser and every per-token policy loss
(Clip-Cov and KL-Cov with a fixed token selection, as the driver hands it over).

The learners run in float64 (``learner.master_dtype``) so the check sees the normalisers, not
float32 summation order: in float32 the same comparison differs by ~1e-6 from rounding alone,
while a wrong normaliser is off by a factor (e.g. 1/8 or 2)."""

from __future__ import annotations

import pytest
import ray
import torch

from rlvr.config import load_recipe
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import init_ray
from tests.conftest import DEFAULT_RECIPE, arith_rows, grad_rel

AGG = [  # every aggregation mode (rlvr.algorithms.parts.aggregation.AGG_MODES), with the settings it needs
    {"loss_agg": "token-mean"},
    {"loss_agg": "seq-mean-token-mean"},
    {"loss_agg": "seq-mean-token-sum"},
    {"loss_agg": "seq-mean-token-sum-norm"},
    {"loss_agg": "token-sum-constant", "loss_agg_constant": 7.0},
]
LOSSES = [  # every per-token policy loss but PPO-clip (covered above), with the settings it reads
    {"policy_loss": "cispo", "clip_low": 10.0},
    {"policy_loss": "sapo", "loss_agg": "seq-mean-token-mean"},
    {"policy_loss": "gmpo", "loss_agg": "seq-mean-token-mean", "clip_low": 0.04, "clip_high": 0.04},
    {"policy_loss": "gpg"},
    {"policy_loss": "dppo_tv", "clip_low": 0.01, "clip_high": 0.01, "ratio_cap": 1.02},
    {"policy_loss": "dppo_kl", "clip_low": 1e-4, "clip_high": 1e-4},
    {"policy_loss": "clip_cov", "dual_clip": 3.0},
    {"policy_loss": "kl_cov", "kl_cov_coef": 0.5},
    {"policy_loss": "reinforce", "ratio_cap": 1.02},
]


def _gradients(cfg_overrides: list[str], tmp: str) -> list[tuple[float, dict[str, torch.Tensor]]]:
    cfg = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp}", "algorithm.kl_coef=0.1", "learner.master_dtype=float64",
                                       *cfg_overrides])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    placement = Placement.reserve(cfg, critic=False, timeout_s=60)
    learners = LearnerGroup(cfg, timeout_s=600, placement=placement)
    learners.setup()
    # 8 ragged samples (2 groups of 4) with per-token advantages, and a frozen-reference KL term
    rows = arith_rows(tok, lambda k, t: (1.0 if k % 2 == 0 else -1.0) * (0.5 + 0.1 * t))
    rows.ref_logprobs = learners.compute_logprobs(rows, "reference")
    rows.old_logprobs = [[x - 0.05 for x in lp] for lp in learners.compute_logprobs(rows, "policy")]  # ratio != 1
    rows.token_values = {"cov_selected": [[float((i + t) % 3 == 0) for t in range(len(a))]
                                          for i, a in enumerate(rows.advantages or [])]}
    out = []
    for agg in AGG + LOSSES:
        loss, _, grads = learners.compute_gradients(rows, kl_coef=0.1, algorithm=agg)
        out.append((loss, grads))
    learners.shutdown()
    placement.remove()
    return out


@pytest.fixture(scope="module")
def ray_session():
    init_ray(None, None, 3)
    yield
    ray.shutdown()


def test_every_aggregation_mode_and_policy_loss_is_covered() -> None:
    from rlvr.algorithms.parts.aggregation import AGG_MODES
    from rlvr.config.schema import AlgorithmConfig

    assert sorted(a["loss_agg"] for a in AGG) == sorted(AGG_MODES)
    every = AlgorithmConfig.model_fields["policy_loss"].annotation.__args__  # the Literal's values
    assert sorted(["ppo_clip"] + [a["policy_loss"] for a in LOSSES]) == sorted(every)


def test_micro_batch_and_rank_invariance(ray_session, tmp_path) -> None:
    whole = _gradients(["learner.micro_batch_tokens=8192"], str(tmp_path))  # 1 x 8
    singles = _gradients(["learner.micro_batch_tokens=22"], str(tmp_path))  # 8 x 1
    ranks = _gradients(["learner.micro_batch_tokens=22", "learner.num_ranks=2"], str(tmp_path))  # 2 ranks x 4 x 1
    assert len(whole) == len(AGG + LOSSES)
    for agg, (lw, gw), (ls, gs), (lr, gr) in zip(AGG + LOSSES, whole, singles, ranks):
        assert gw["model.embed_tokens.weight"].abs().sum() > 0, agg
        assert ls == pytest.approx(lw, rel=1e-6) and lr == pytest.approx(lw, rel=1e-6), agg
        assert grad_rel(gw, gs) < 1e-6, (agg, grad_rel(gw, gs))
        assert grad_rel(gw, gr) < 1e-6, (agg, grad_rel(gw, gr))
