"""DAPO dynamic sampling: keep groups with signal, generate more rounds, top up with a message."""

from __future__ import annotations

import itertools

import pytest

from rlvr.config import load_recipe
from rlvr.data.dataset import PromptRow
from rlvr.rollout import sampling
from rlvr.rollout.batch import RolloutBatch
from rlvr.verify import VerifyResult
from tests.conftest import DEFAULT_RECIPE


class FakePrompts:
    def __init__(self) -> None:
        self.counter = itertools.count()

    def next_batch(self, k: int) -> list[PromptRow]:
        return [PromptRow(f"Q{next(self.counter)}", [1, 2], "0", None, "fake") for _ in range(k)]


def _fake_collect(pattern: list[list[float]]):
    """Each call scores the next prompts' groups with rewards from ``pattern`` (cycled)."""
    groups = itertools.cycle(pattern)

    def collect(rollouts, verify, prompts, n, *args, **kwargs) -> RolloutBatch:
        samples, results = [], []
        for _ in prompts:
            for r in next(groups):
                samples.append({"token_ids": [5], "logprobs": [-0.1], "finish_reason": "stop", "text": "x"})
                results.append(VerifyResult(score=r, correct=r > 0, details={}))
        return RolloutBatch.equal_groups(list(prompts), samples, results, n, {"generate": 1.0, "verify": 0.5})

    return collect


@pytest.fixture
def cfg():
    return load_recipe(DEFAULT_RECIPE, ["algorithm.name=dapo", "rollout.prompts_per_step=4", "rollout.n=2",
                                        "algorithm.max_generation_batches=3"])


def test_keeps_only_groups_with_signal_over_rounds(cfg, monkeypatch) -> None:
    # every other group has signal -> 2 per round of 4 -> two rounds fill the batch of 4
    monkeypatch.setattr(sampling, "collect", _fake_collect([[1.0, 0.0], [1.0, 1.0]]))
    batch, metrics = sampling.sample_step(cfg, None, None, FakePrompts(), step=1)
    assert len(batch.prompts) == 4 and len(batch.samples) == 8
    assert all(batch.group_has_signal())
    assert metrics == {"dynamic_sampling/rounds": 2.0, "dynamic_sampling/signal_fraction": 0.5,
                       "dynamic_sampling/topped_up": 0.0,
                       "rollout/generated_tokens": 16.0,  # 2 rounds x 4 prompts x 2 samples x 1 token
                       "throughput/generate_tokens_per_s": 8.0}
    assert batch.timings == {"generate": 2.0, "verify": 1.0}  # both rounds counted once


def test_tops_up_when_rounds_run_out(cfg, monkeypatch) -> None:
    # 1 group in 4 has signal; 3 rounds give 3 -> one zero-signal group tops the batch up
    monkeypatch.setattr(sampling, "collect", _fake_collect([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    batch, metrics = sampling.sample_step(cfg, None, None, FakePrompts(), step=1)
    assert len(batch.prompts) == 4
    assert batch.group_has_signal() == [True, True, True, False]
    assert metrics["dynamic_sampling/topped_up"] == 1.0 and metrics["dynamic_sampling/rounds"] == 3.0


def test_each_round_over_generates_by_the_multiplier_and_discards_the_surplus(monkeypatch) -> None:
    # DAPO: 3x the prompts per round; half the groups have signal -> round 1 gives 6 of the 4 needed
    cfg = load_recipe(DEFAULT_RECIPE, ["algorithm.name=dapo", "rollout.prompts_per_step=4", "rollout.n=2",
                                       "algorithm.generation_batch_multiplier=3"])
    asked: list[int] = []
    fake = _fake_collect([[1.0, 0.0], [1.0, 1.0]])

    def collect(rollouts, verify, prompts, n, *args, **kwargs) -> RolloutBatch:
        asked.append(len(prompts))
        return fake(rollouts, verify, prompts, n, *args, **kwargs)

    monkeypatch.setattr(sampling, "collect", collect)
    batch, metrics = sampling.sample_step(cfg, None, None, FakePrompts(), step=1)
    assert asked == [12] and [p.text for p in batch.prompts] == ["Q0", "Q2", "Q4", "Q6"]
    assert metrics["dynamic_sampling/rounds"] == 1.0 and metrics["dynamic_sampling/signal_fraction"] == 0.5
    assert metrics["rollout/generated_tokens"] == 24.0  # all 12 prompts x 2 samples were generated


def test_over_generation_keeps_round_seeds_disjoint(monkeypatch) -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["algorithm.name=dapo", "rollout.prompts_per_step=4", "rollout.n=2",
                                       "algorithm.generation_batch_multiplier=1.5",
                                       "algorithm.max_generation_batches=3"])
    seeds: list[int] = []
    fake = _fake_collect([[0.0, 0.0]])  # never any signal: every round runs

    def collect(rollouts, verify, prompts, n, *args, seed=None, **kwargs) -> RolloutBatch:
        seeds.append(seed)
        return fake(rollouts, verify, prompts, n)

    monkeypatch.setattr(sampling, "collect", collect)
    sampling.sample_step(cfg, None, None, FakePrompts(), step=2)
    assert [b - a for a, b in zip(seeds, seeds[1:])] == [6 * 2, 6 * 2]  # ceil(1.5 * 4) prompts x n per round


def test_stop_when_rounds_run_out_names_the_shortfall(monkeypatch) -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["algorithm.name=dapo", "rollout.prompts_per_step=4", "rollout.n=2",
                                       "algorithm.max_generation_batches=2", "algorithm.when_rounds_run_out=stop"])
    monkeypatch.setattr(sampling, "collect", _fake_collect([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(sampling.SignalExhausted, match="found 2 of 4 groups with signal in 2 rounds"):
        sampling.sample_step(cfg, None, None, FakePrompts(), step=3)


def test_off_means_one_round_as_generated(monkeypatch) -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["rollout.prompts_per_step=4", "rollout.n=2"])
    monkeypatch.setattr(sampling, "collect", _fake_collect([[1.0, 1.0]]))
    batch, metrics = sampling.sample_step(cfg, None, None, FakePrompts(), step=1)
    assert len(batch.prompts) == 4 and metrics == {}


def test_batch_metrics_report_reward_terms_and_verifier_failures() -> None:
    prompts = FakePrompts().next_batch(2)
    samples = [{"token_ids": [5] * k, "logprobs": [-0.1] * k, "finish_reason": "stop", "text": "x"}
               for k in (1, 2, 3, 4)]
    results = [
        VerifyResult(1.5, True, {"reason": "ok", "terms": {"correct": 1.0, "format": 1.0}}),
        VerifyResult(0.5, False, {"reason": "mismatch", "terms": {"correct": 0.0, "format": 1.0}}),
        VerifyResult(0.0, False, {"reason": "timeout"}),
        VerifyResult(0.0, False, {"reason": "error: ValueError: x"}),
    ]
    m = RolloutBatch.equal_groups(prompts, samples, results, 2, {"generate": 1.0, "verify": 0.5}).metrics()
    assert m["reward/mean"] == pytest.approx(0.5) and m["accuracy"] == pytest.approx(0.25)
    assert m["reward/terms/correct"] == pytest.approx(0.5) and m["reward/terms/format"] == pytest.approx(1.0)
    assert (m["verify/timeouts"], m["verify/errors"]) == (1.0, 1.0)
    assert m["rollout/solve_none"] == pytest.approx(0.5) and m["response_length/mean"] == pytest.approx(2.5)
