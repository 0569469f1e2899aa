"""Settings that must reach a real DeepSpeed learner, checked by what they do to the loss, the gradients and
the weights (float64 learners on CPU: losses exact up to summation order; ZeRO accumulates gradients and
keeps master weights in float32, so those are compared to float32 rounding):

* ``entropy_coef`` subtracts coef x the mean token entropy from the loss, with a gradient;
* ``tis_cap`` weighs each token by min(pi_old / pi_sampler, cap);
* rows masked out by overlong filtering contribute nothing, normalisers included;
* ratios beyond the clip range give no gradient through the learner's own log-probs;
* ``weight_decay`` and ``warmup_steps`` reach DeepSpeed's optimizer: a zero-gradient update shrinks every
  weight by exactly lr_k x weight_decay, with lr_k the warm-up's rate at update k;
* the PPO critic's clipped value loss falls when it is trained on fixed returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import ray
import torch

from rlvr.config import RecipeConfig, load_recipe
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import init_ray
from tests.conftest import DEFAULT_RECIPE, arith_rows
from tests.controls import with_control

BASE = ["algorithm.kl_placement=none", "algorithm.kl_coef=0", "learner.master_dtype=float64",
        "rollout.prompts_per_step=2", "rollout.n=4"]


def _cfg(tmp: str, *overrides: str) -> RecipeConfig:
    return load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp}", *BASE, *overrides])


class Learner:
    """A started learner group with its placement, shut down together."""

    def __init__(self, cfg: RecipeConfig, critic: bool = False) -> None:
        from transformers import AutoTokenizer

        from rlvr.learner.critic import CriticWorker

        self.tok = AutoTokenizer.from_pretrained(cfg.model.path)
        self.placement = Placement.reserve(cfg, critic=critic, timeout_s=60)
        self.group = LearnerGroup(cfg, timeout_s=600, placement=self.placement,
                                  **({"worker_cls": CriticWorker, "role": "critic"} if critic else {}))
        self.group.setup()

    def close(self) -> None:
        self.group.shutdown()
        self.placement.remove()


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Learner]:
    init_ray(None, None, 6)  # logical CPUs: the module's learner and one more group at a time
    made = Learner(_cfg(str(tmp_path_factory.mktemp("runs"))))
    yield made
    made.close()
    ray.shutdown()


def _rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], scale: float = 1.0) -> float:
    va = torch.cat([a[k].flatten() for k in sorted(a)]) * scale
    vb = torch.cat([b[k].flatten() for k in sorted(a)])
    return ((va - vb).norm() / vb.norm()).item()


def test_entropy_bonus_reaches_the_loss_with_its_gradient(learner: Learner) -> None:
    rows = arith_rows(learner.tok)
    loss0, sums0, grad0 = learner.group.compute_gradients(rows)
    loss1, sums1, grad1 = learner.group.compute_gradients(rows, algorithm={"entropy_coef": 0.1})
    loss2, _, grad2 = learner.group.compute_gradients(rows, algorithm={"entropy_coef": 0.2})
    entropy = sums0["actor/entropy"]  # mean token entropy of these rows
    assert entropy > 0.01 and sums1["actor/entropy"] == pytest.approx(entropy, rel=1e-12)
    assert loss0 - loss1 == pytest.approx(0.1 * entropy, rel=1e-9)  # token-mean: loss - coef * mean entropy
    assert loss0 - loss2 == pytest.approx(0.2 * entropy, rel=1e-9)
    bonus1 = {k: grad1[k] - grad0[k] for k in grad0}
    bonus2 = {k: grad2[k] - grad0[k] for k in grad0}
    # linear in coef and not zero (ZeRO accumulates gradients in float32, and the bonus is a difference of two)
    assert _rel(bonus1, bonus2, scale=2.0) < 1e-4 and _rel(grad0, grad1) > 1e-3


def test_truncated_importance_sampling_weighs_each_token(learner: Learner) -> None:
    rows = arith_rows(learner.tok)
    old = learner.group.compute_logprobs(rows, "policy")
    rows.old_logprobs = old
    rows.sampler_logprobs = [[x - math.log(2.0) for x in lp] for lp in old]  # pi_old / pi_sampler = 2 everywhere
    loss0, sums0, grad0 = learner.group.compute_gradients(rows)
    capped, sums, grad = learner.group.compute_gradients(rows, algorithm={"tis_cap": 1.5})
    assert capped == pytest.approx(1.5 * loss0, rel=1e-9) and _rel(grad0, grad, scale=1.5) < 1e-6
    assert sums["actor/tis_clipfrac"] == pytest.approx(1.0) and "actor/tis_clipfrac" not in sums0
    loose, _, _ = learner.group.compute_gradients(rows, algorithm={"tis_cap": 3.0})
    assert loose == pytest.approx(2.0 * loss0, rel=1e-6)  # under the cap: the full weight (float32 exp(log 2))
    # the other corrections through the real learner: a sequence weight of 2^len truncated at the cap; whole
    # sequences (mis) or every token (icepop) above the cap dropped; inside an icepop band the full weight
    seq, sums, grad = learner.group.compute_gradients(rows, algorithm={"tis_cap": 1.5, "is_correction": "seq_tis"})
    assert seq == pytest.approx(1.5 * loss0, rel=1e-6) and sums["actor/tis_clipfrac"] == pytest.approx(1.0)
    for kind in ("mis", "icepop"):
        dropped, sums, grad = learner.group.compute_gradients(rows, algorithm={"tis_cap": 1.5, "is_correction": kind})
        assert dropped == 0.0 and all(float(g.abs().max()) == 0.0 for g in grad.values()), kind
        assert sums["actor/is_masked_frac"] == pytest.approx(1.0), kind
    band, sums, _ = learner.group.compute_gradients(
        rows, algorithm={"tis_cap": 3.0, "is_correction": "icepop", "is_low": 0.5})
    assert band == pytest.approx(2.0 * loss0, rel=1e-6) and sums["actor/is_masked_frac"] == 0.0


def test_overlong_filtered_rows_contribute_nothing(learner: Learner) -> None:
    rows = arith_rows(learner.tok)
    keep = [0, 1, 3, 4, 6, 7]
    rows.active = [i in keep for i in range(len(rows))]
    for agg in ("token-mean", "seq-mean-token-mean"):
        masked = learner.group.compute_gradients(rows, algorithm={"loss_agg": agg})
        subset = learner.group.compute_gradients(arith_rows(learner.tok).select(keep), algorithm={"loss_agg": agg})
        assert masked[0] == pytest.approx(subset[0], rel=1e-9), agg
        assert _rel(masked[2], subset[2]) < 1e-6, agg


@pytest.mark.controlled
@pytest.mark.parametrize("preset", ["grpo"])
def test_ratios_beyond_the_clip_give_no_gradient(learner: Learner, preset: str, control: str | None,
                                                 tmp_path: Any) -> None:
    """Old log-probs 0.5 below the learner's where the advantage is positive (ratio 1.65 > 1.2) and 0.5 above
    where it is negative (ratio 0.61 < 0.8): every token is clipped and the gradient is zero. The same rows
    on-policy do have a gradient."""
    algorithm = with_control(_cfg(str(tmp_path)), control).algorithm.model_dump()
    rows = arith_rows(learner.tok)
    now = learner.group.compute_logprobs(rows, "policy")
    rows.old_logprobs = [[x - 0.5 * a for x, a in zip(lp, adv)] for lp, adv in zip(now, rows.advantages)]
    _, sums, grad = learner.group.compute_gradients(rows, algorithm=algorithm)
    assert sums["actor/pg_clipfrac"] == pytest.approx(1.0)
    assert max(g.abs().max().item() for g in grad.values()) == 0.0
    rows.old_logprobs = now
    _, _, on_policy = learner.group.compute_gradients(rows, algorithm=algorithm)
    assert max(g.abs().max().item() for g in on_policy.values()) > 1e-4


def _weights(group: LearnerGroup) -> dict[str, torch.Tensor]:
    names = [n for n, _ in group.weight_manifest()]
    return {k: v.clone() for k, v in ray.get(group.export_weights(names)).items()}


def test_weight_decay_and_warmup_reach_deepspeeds_optimizer(learner: Learner, tmp_path: Any) -> None:
    """Zero advantages, no KL: the gradient is 0, so AdamW's update is only the decoupled decay
    p <- p (1 - lr_k wd). With 2 warm-up steps lr_k is lr/2, lr, lr."""
    lr, wd = 1e-3, 0.1
    own = Learner(_cfg(str(tmp_path), f"algorithm.lr={lr}", f"algorithm.weight_decay={wd}",
                       "algorithm.warmup_steps=2"))
    try:
        rows = arith_rows(own.tok)
        rows.advantages = [[0.0] * len(a) for a in rows.advantages]
        before = _weights(own.group)
        reported = []
        for k, rate in enumerate([lr / 2, lr, lr], start=1):
            out = own.group.train(rows, group_sizes=[4] * (len(rows) // 4))
            assert out["actor/grad_norm"] == 0.0 and out["actor/skipped_updates"] == 0
            after = _weights(own.group)
            for name, w in before.items():
                moved = w != 0
                ratio = after[name][moved] / w[moved]
                # ZeRO keeps float32 master weights: exact to float32 rounding, far from the next step's 5e-5
            assert torch.allclose(ratio, torch.full_like(ratio, 1 - rate * wd), rtol=0, atol=1e-6), (k, name)
            before = after
            reported.append(out["actor/lr"])
        assert reported == pytest.approx([lr / 2, lr, lr])  # actor/lr: the rate this update used
    finally:
        own.close()


def test_critic_value_loss_falls_on_fixed_returns(learner: Learner, tmp_path: Any) -> None:
    """PPO's critic (policy backbone + fresh value head) regresses fixed returns (+1 for every response to the
    first prompt, -1 for the second, so one value per state fits them): its clipped value loss falls over a
    few updates, and values move towards the targets."""
    cfg = _cfg(str(tmp_path), "algorithm.name=ppo", "algorithm.kl_placement=none", "algorithm.kl_coef=0",
               "algorithm.kl_estimator=k1", "algorithm.critic_lr=1e-3")
    critic = Learner(cfg, critic=True)
    try:
        rows = arith_rows(critic.tok)
        rows.returns = [[1.0 if i < 4 else -1.0] * len(a) for i, a in enumerate(rows.advantages)]
        losses = []
        for _ in range(8):
            rows.values = critic.group.compute_values(rows)  # the pre-update values, as the driver passes them
            losses.append(critic.group.train(rows, group_sizes=[4] * (len(rows) // 4))["critic/vf_loss"])
        assert losses[-1] < 0.5 * losses[0], losses
        values = critic.group.compute_values(rows)
        for v, r in zip(values, rows.returns):
            assert abs(sum(v) / len(v) - r[0]) < abs(r[0]), (v, r)  # closer to its target than 0 is
    finally:
        critic.close()


def test_critic_value_loss_weight_and_its_own_schedule(learner: Learner, tmp_path: Any) -> None:
    """``value_loss_coef`` scales the critic's gradient before its clip (Tulu 3: 0.1), and the critic runs its
    own warm-up (``critic_warmup_steps``), not the policy's: the same rows and the same seeded value head
    give a first-update gradient norm exactly ``coef`` times the unweighted one, at half the critic lr."""
    norms, rates = [], []
    for extra in ([], ["algorithm.value_loss_coef=0.25", "algorithm.critic_warmup_steps=2",
                       "algorithm.warmup_steps=5"]):
        cfg = _cfg(str(tmp_path), "algorithm.name=ppo", "algorithm.kl_placement=none", "algorithm.kl_coef=0",
                   "algorithm.kl_estimator=k1", "algorithm.critic_lr=1e-3", "algorithm.grad_clip=0", *extra)
        critic = Learner(cfg, critic=True)
        try:
            rows = arith_rows(critic.tok)
            rows.returns = [[1.0 if i < 4 else -1.0] * len(a) for i, a in enumerate(rows.advantages)]
            rows.values = critic.group.compute_values(rows)
            out = critic.group.train(rows, group_sizes=[4] * (len(rows) // 4))
            norms.append(out["critic/grad_norm"])
            rates.append(out["critic/lr"])
        finally:
            critic.close()
    assert norms[1] == pytest.approx(0.25 * norms[0], rel=1e-4), norms
    assert rates == pytest.approx([1e-3, 0.5e-3])
