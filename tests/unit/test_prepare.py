"""`rlvr.prepare.prepare_rows`: from a scored rollout batch to the rows a learner trains on, with learners
and critic replaced by stand-ins that return fixed log-probs and values. Expected values are computed here
by hand from the formulas (REINFORCE++'s KL in the reward, GAE from the critic's values, DAPO's overlong
punishment, Tulu's non-EOS penalty, overlong filtering)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rlvr.algorithms import get_algorithm
from rlvr.config import RecipeConfig, load_recipe
from rlvr.data.dataset import PromptRow
from rlvr.learner.batch import TrainRows
from rlvr.prepare import prepare_rows
from rlvr.rollout.batch import RolloutBatch
from rlvr.tracking import PhaseTimer
from rlvr.verify import VerifyResult
from tests.conftest import DEFAULT_RECIPE

PROMPT = [5, 6, 7]


class Learners:
    """Stands in for `LearnerGroup`: fixed per-token log-probs for the policy and the reference."""

    def __init__(self, policy: list[list[float]], reference: list[list[float]]) -> None:
        self.out = {"policy": policy, "reference": reference}
        self.calls: list[str] = []

    def compute_logprobs(self, rows: TrainRows, which: str) -> list[list[float]]:
        assert [len(ids) - p for ids, p in zip(rows.input_ids, rows.prompt_lens)] == [len(x) for x in self.out[which]]
        self.calls.append(which)
        return [list(x) for x in self.out[which]]


class Critic:
    def __init__(self, values: list[list[float]]) -> None:
        self.values = values

    def compute_values(self, rows: TrainRows) -> list[list[float]]:
        return [list(v) for v in self.values]


def _cfg(algorithm: dict[str, Any], n: int, max_new_tokens: int = 4) -> RecipeConfig:
    raw = load_recipe(DEFAULT_RECIPE, ["rollout.prompts_per_step=2"]).model_dump()
    raw["rollout"].update(n=n, max_new_tokens=max_new_tokens)
    return RecipeConfig.model_validate({**raw, "algorithm": {"lr": 1e-4, **algorithm}})


def _batch(lengths: list[int], rewards: list[float], truncated: list[bool], n: int) -> RolloutBatch:
    prompts = [PromptRow(text="Q", token_ids=PROMPT, answer="1", verifier=None, source="t")
               for _ in range(len(lengths) // n)]
    samples = [{"token_ids": list(range(10, 10 + k)), "logprobs": [-0.5] * k, "text": "x",
                "finish_reason": "length" if cut else "stop"} for k, cut in zip(lengths, truncated)]
    results = [VerifyResult(score=r, correct=r > 0, details={}) for r in rewards]
    return RolloutBatch.equal_groups(prompts, samples, results, n, {})


def _prepare(cfg: RecipeConfig, batch: RolloutBatch, learners: Learners, kl_coef: float = 0.0,
             critic: Critic | None = None) -> tuple[TrainRows, dict[str, float]]:
    algorithm = get_algorithm(cfg.algorithm, max_new_tokens=cfg.rollout.max_new_tokens)
    return prepare_rows(cfg, algorithm, batch, learners, kl_coef, PhaseTimer(), critic)  # type: ignore[arg-type]


def _whiten(rows: list[list[float]]) -> list[list[float]]:
    flat = [x for r in rows for x in r]
    mean = sum(flat) / len(flat)
    var = sum((x - mean) ** 2 for x in flat) / (len(flat) - 1)
    return [[(x - mean) / math.sqrt(var + 1e-8) for x in r] for r in rows]


def test_reinforce_pp_folds_k1_of_the_old_policy_against_the_reference_into_the_token_rewards() -> None:
    cfg = _cfg({"name": "reinforce_pp", "kl_coef": 0.1}, n=1)
    old, ref = [[-1.0, -2.0], [-0.5]], [[-1.5, -2.0], [-1.0]]  # k1 = old - ref = [[0.5, 0], [0.5]]
    learners = Learners(old, ref)
    rows, metrics = _prepare(cfg, _batch([2, 1], [1.0, 0.0], [False, False], n=1), learners, kl_coef=0.1)
    assert sorted(learners.calls) == ["policy", "reference"]
    assert rows.old_logprobs == old and rows.ref_logprobs == ref
    # token rewards: [-0.05, 1 - 0] and [0 - 0.05]; returns to go (gamma 1): [0.95, 1.0] and [-0.05]
    expected = _whiten([[0.95, 1.0], [-0.05]])
    for got, want in zip(rows.advantages, expected):
        assert got == pytest.approx(want, rel=1e-5)
    assert metrics["actor/kl_in_reward"] == pytest.approx(1.0 / 3)
    assert metrics["actor/kl_coef"] == 0.1


def test_gae_takes_the_critics_values_and_returns_value_targets() -> None:
    cfg = _cfg({"name": "ppo", "kl_coef": 0.05}, n=1)
    same = [[-1.0, -2.0], [-0.5]]  # old == reference: no KL in the rewards
    values = [[0.5, 0.8], [0.2]]
    rows, _ = _prepare(cfg, _batch([2, 1], [1.0, 0.0], [False, False], n=1), Learners(same, same), kl_coef=0.05,
                       critic=Critic(values))
    assert rows.values == values
    # sample 0: t=1: delta = 1 - 0.8 = 0.2; t=0: delta = 0.8 - 0.5 = 0.3, A = 0.3 + 0.95 * 0.2 = 0.49
    # sample 1: delta = 0 - 0.2 = -0.2. Returns = A + V.
    assert rows.returns[0] == pytest.approx([0.99, 1.0]) and rows.returns[1] == pytest.approx([0.0], abs=1e-7)
    for got, want in zip(rows.advantages, _whiten([[0.49, 0.2], [-0.2]])):
        assert got == pytest.approx(want, rel=1e-5)


def test_overlong_punishment_and_non_eos_penalty_shape_the_reward_before_the_group_advantage() -> None:
    """max_new_tokens 4, buffer 0.5: no penalty up to 2 tokens, then -0.5 per token; a truncated sample's
    reward is replaced by the non-EOS penalty -2 afterwards."""
    cfg = _cfg({"name": "drgrpo", "overlong_buffer_ratio": 0.5, "non_eos_penalty": -2.0}, n=4)
    lengths, rewards, truncated = [4, 3, 2, 1], [1.0, 1.0, 1.0, 0.0], [True, False, False, False]
    same = [[-1.0] * k for k in lengths]
    rows, metrics = _prepare(cfg, _batch(lengths, rewards, truncated, n=4), Learners(same, same))
    shaped = [-2.0, 1.0 - 0.5, 1.0, 0.0]
    mean = sum(shaped) / 4
    assert metrics["reward/shaped_mean"] == pytest.approx(mean)
    assert [a[0] for a in rows.advantages] == pytest.approx([s - mean for s in shaped])  # Dr. GRPO: R - mean
    assert rows.active is None  # no overlong filter asked for


def test_overlong_filter_masks_truncated_responses_out_of_the_loss() -> None:
    cfg = _cfg({"name": "dapo", "overlong_filter": True}, n=4, max_new_tokens=8)
    truncated = [True, False, True, False]
    same = [[-1.0] * 2 for _ in range(4)]
    rows, metrics = _prepare(cfg, _batch([2, 2, 2, 2], [1.0, 0.0, 1.0, 1.0], truncated, n=4), Learners(same, same))
    assert rows.active == [False, True, False, True]
    assert rows.response_tokens() == 4 and rows.active_sequences() == 2  # the normalisers skip them too
    assert metrics["overlong_filter/masked_fraction"] == 0.5


def test_log_probs_are_computed_only_where_the_algorithm_needs_them() -> None:
    lengths, rewards = [2, 1], [1.0, 0.0]
    same = [[-1.0] * k for k in lengths]
    on_policy = Learners(same, same)
    rows, _ = _prepare(_cfg({"name": "drgrpo"}, n=2), _batch(lengths, rewards, [False] * 2, n=2), on_policy)
    assert on_policy.calls == [] and rows.old_logprobs is None and rows.ref_logprobs is None
    several = Learners(same * 2, same * 2)  # 2 mini-batches: the ratio needs the pre-update policy's log-probs
    cfg = _cfg({"name": "drgrpo", "mini_batches": 2}, n=2)
    rows, _ = _prepare(cfg, _batch(lengths * 2, rewards * 2, [False] * 4, n=2), several)
    assert several.calls == ["policy"] and rows.old_logprobs == same * 2 and rows.ref_logprobs is None
    with_kl = Learners(same, same)
    rows, _ = _prepare(_cfg({"name": "grpo"}, n=2), _batch(lengths, rewards, [False] * 2, n=2), with_kl)
    assert with_kl.calls == ["reference"] and rows.ref_logprobs == same and rows.old_logprobs is None


def test_nft_takes_correctness_from_the_verifier_not_the_reward_sign() -> None:
    """A shaped reward (here +0.5 for a wrong answer) must not count as correct for NFT's r_hat."""
    cfg = _cfg({"name": "nft"}, n=4)
    batch = _batch([1, 1, 1, 1], [1.0, 0.5, 0.0, 1.0], [False] * 4, n=4)
    batch.results[1] = VerifyResult(score=0.5, correct=False, details={})
    same = [[-1.0]] * 4
    rows, _ = _prepare(cfg, batch, Learners(same, same))
    assert rows.row_values["correct"] == [1.0, 0.0, 0.0, 1.0]
    assert rows.row_values["r_hat"] == pytest.approx([0.5] * 4)


def test_clipped_value_loss_takes_the_larger_of_the_clipped_and_unclipped_errors() -> None:
    """PPO's value loss (Schulman et al. 2017; ALGORITHMS.md §7.4): 0.5 * max((V - R)^2, (V_clip - R)^2) with
    V_clip = V_old + clip(V - V_old, -eps, eps)."""
    import torch

    from rlvr.learner.critic import clipped_value_loss

    values = torch.tensor([[1.0, 0.0, 0.5]])
    old = torch.tensor([[0.5, 0.5, 0.5]])
    returns = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clipped = clipped_value_loss(values, old, returns, mask, clip=0.2)
    # token 0: V moved +0.5 towards R: unclipped (1-2)^2 = 1, clipped (0.7-2)^2 = 1.69 -> the clipped one
    # token 1: V moved -0.5 away from R: unclipped (0-1)^2 = 1, clipped (0.3-1)^2 = 0.49 -> the unclipped one
    assert loss[0, :2].tolist() == pytest.approx([0.5 * 1.69, 0.5 * 1.0])
    assert clipped.tolist() == [[True, False, False]]  # the masked token never counts
    plain, none = clipped_value_loss(values, old, returns, mask, clip=None)
    assert plain[0, :2].tolist() == pytest.approx([0.5, 0.5]) and not none.any()


def test_remax_baseline_is_the_greedy_reward_shaped_like_the_samples_on_ragged_groups() -> None:
    """Groups of 2 and 3 (a second round gave prompt 1 one more sample): every sample's advantage is its reward
    minus its own prompt's greedy reward, and a truncated greedy response pays the same non-EOS penalty."""
    cfg = _cfg({"name": "remax", "kl_placement": "none", "kl_coef": 0.0, "non_eos_penalty": -1.0}, n=2)
    prompts = [PromptRow(text="Q", token_ids=PROMPT, answer="1", verifier=None, source="t") for _ in range(2)]
    samples = [{"token_ids": [10, 11], "logprobs": [-0.5] * 2, "text": "x", "finish_reason": "stop"}
               for _ in range(5)]
    results = [VerifyResult(score=r, correct=r > 0, details={}) for r in [1.0, 0.0, 1.0, 1.0, 0.0]]
    greedy = [{"token_ids": [10], "logprobs": [], "text": "g", "finish_reason": f} for f in ("stop", "length")]
    batch = RolloutBatch(prompts, samples, results, [2, 3], {}, extra_counts=[0, 1], greedy_samples=greedy,
                         greedy_results=[VerifyResult(1.0, True, {}), VerifyResult(1.0, True, {})])
    rows, _ = prepare_rows(cfg, get_algorithm(cfg.algorithm, 4), batch, Learners([], []), 0.0, PhaseTimer())
    # prompt 0's greedy response scores 1; prompt 1's was truncated: non_eos_penalty replaces its 1 with -1
    assert [row[0] for row in rows.advantages] == pytest.approx([0.0, -1.0, 2.0, 2.0, 1.0])
    assert all(row == [row[0]] * 2 for row in rows.advantages)  # gamma 1, no KL: the same on every token


def test_gdpo_gets_each_term_of_a_composed_reward() -> None:
    """Two terms, one group of four: each term normalised in the group, summed, whitened over the tokens."""
    cfg = _cfg({"name": "gdpo"}, n=4)
    prompts = [PromptRow(text="Q", token_ids=PROMPT, answer="1", verifier=None, source="t")]
    samples = [{"token_ids": [10], "logprobs": [-0.5], "text": "x", "finish_reason": "stop"} for _ in range(4)]
    terms = [{"correct": c, "format": f} for c, f in [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 0.0)]]
    results = [VerifyResult(score=t["correct"] + 0.5 * t["format"], correct=t["correct"] > 0,
                            details={"terms": t}) for t in terms]
    batch = RolloutBatch.equal_groups(prompts, samples, results, 4, {})
    rows, _ = prepare_rows(cfg, get_algorithm(cfg.algorithm, 4), batch, Learners([], []), 0.0, PhaseTimer())
    # correct: mean 0.5, unbiased std 0.5774 -> ±0.866; format: mean 0.25, std 0.5 -> 1.5, -0.5, -0.5, -0.5
    s1, s2 = math.sqrt(1 / 3), 0.5
    summed = [0.5 / s1 + 0.75 / s2, 0.5 / s1 - 0.25 / s2, -0.5 / s1 - 0.25 / s2, -0.5 / s1 - 0.25 / s2]
    mean = sum(summed) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in summed) / 3)
    assert [row[0] for row in rows.advantages] == pytest.approx([(x - mean) / std for x in summed], rel=1e-4)
    assert rows.advantages[2] == rows.advantages[3]  # equal on both terms: equal advantages
