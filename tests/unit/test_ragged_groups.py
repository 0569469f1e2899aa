"""Groups of different sizes (``rollout.extra_samples``) and ReMax's greedy baseline sample, on the rollout
side: the batch's bookkeeping, the second-round rule, the learner's mini-batch cuts at group boundaries,
and the greedy request's path through the engine, the synchronous and the asynchronous loops. Fake
engines and verifiers, no Ray or vLLM engine."""

from __future__ import annotations

import itertools
import pickle
import sys
import types
from concurrent.futures import Future
from typing import Any

import pytest

from rlvr.config import RecipeError, load_recipe
from rlvr.config.schema import ExtraSamplesConfig
from rlvr.data.dataset import PromptRow, PromptSampler
from rlvr.learner.batch import TrainRows
from rlvr.learner.packing import group_mini_batches
from rlvr.rollout import sampling
from rlvr.rollout.batch import RolloutBatch
from rlvr.verify import VerifyResult
from tests.conftest import DEFAULT_RECIPE


def _row(k: int) -> PromptRow:
    return PromptRow(f"Q{k}", [k], str(k), None, "fake")


def _sample(text: str, tokens: int = 1) -> dict[str, Any]:
    return {"token_ids": [7] * tokens, "logprobs": [-0.5] * tokens, "finish_reason": "stop", "text": text}


def _ragged(greedy: bool = False) -> RolloutBatch:
    """Three prompts with groups of 2, 3 and 1: rewards [1, 0 | 1, 1, 1 | 0]."""
    rewards = [[1.0, 0.0], [1.0, 1.0, 1.0], [0.0]]
    samples, results = [], []
    for k, group in enumerate(rewards):
        for j, r in enumerate(group):
            samples.append(_sample(f"p{k}s{j}", tokens=1 + j))
            results.append(VerifyResult(r, r > 0, {}))
    kwargs: dict[str, Any] = {}
    if greedy:
        kwargs = {"greedy_samples": [_sample(f"g{k}", tokens=2) for k in range(3)],
                  "greedy_results": [VerifyResult(float(k == 1), k == 1, {}) for k in range(3)]}
    return RolloutBatch([_row(k) for k in range(3)], samples, results, [2, 3, 1], {"generate": 2.0, "verify": 1.0},
                        extra_counts=[0, 1, 0], **kwargs)


# ---- the batch --------------------------------------------------------------------------------------


def test_ragged_batch_maps_samples_to_their_prompts() -> None:
    b = _ragged()
    assert b.group_ids == [0, 0, 1, 1, 1, 2]
    assert b.group_starts == [0, 2, 5]
    assert [b.prompt_of(i).text for i in range(6)] == ["Q0", "Q0", "Q1", "Q1", "Q1", "Q2"]
    with pytest.raises(IndexError):
        b.prompt_of(6)
    rows = b.train_rows()
    assert len(rows) == 6 and rows.prompt_lens == [1] * 6
    assert [ids[0] for ids in rows.input_ids] == [0, 0, 1, 1, 1, 2]  # each row starts with its own prompt
    assert rows.input_ids[4] == [1, 7, 7, 7]
    assert b.group_has_signal() == [True, False, False]


def test_select_groups_and_concat_keep_ragged_groups_together() -> None:
    b = _ragged(greedy=True)
    s = b.select_groups([2, 1])
    assert [p.text for p in s.prompts] == ["Q2", "Q1"] and s.group_sizes == [1, 3]
    assert [x["text"] for x in s.samples] == ["p2s0", "p1s0", "p1s1", "p1s2"]
    assert s.extra_counts == [0, 1] and s.group_ids == [0, 1, 1, 1]
    assert [g["text"] for g in s.greedy_samples or []] == ["g2", "g1"]
    assert s.greedy_rewards == [0.0, 1.0, 1.0, 1.0]
    c = RolloutBatch.concat([b.select_groups([0]), s])
    assert c.group_sizes == [2, 1, 3] and c.group_ids == [0, 0, 1, 2, 2, 2]
    assert [p.text for p in c.prompts] == ["Q0", "Q2", "Q1"] and c.extra_counts == [0, 0, 1]
    assert c.greedy_rewards == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert c.timings == {"generate": 4.0, "verify": 2.0}
    assert RolloutBatch.concat([]).group_sizes == []
    with pytest.raises(ValueError, match="some batches have greedy samples"):
        RolloutBatch.concat([_ragged(), _ragged(greedy=True)])


def test_ragged_metrics_count_groups_not_positions() -> None:
    m = _ragged().metrics()
    # groups: [1, 0] (mixed), [1, 1, 1] (all solved), [0] (none solved)
    assert m["rollout/solve_all"] == pytest.approx(1 / 3) and m["rollout/solve_none"] == pytest.approx(1 / 3)
    assert m["rollout/extra_samples"] == 1.0
    assert m["rollout/group_size_mean"] == pytest.approx(2.0) and m["rollout/group_size_max"] == 3.0
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["rollout/generated_tokens"] == 1 + 2 + 1 + 2 + 3 + 1
    assert "rollout/greedy_accuracy" not in m
    g = _ragged(greedy=True).metrics()
    assert g["rollout/greedy_reward_mean"] == pytest.approx(1 / 3)
    assert g["rollout/greedy_accuracy"] == pytest.approx(1 / 3)
    assert g["rollout/greedy_generated_tokens"] == 6.0
    assert g["throughput/generate_tokens_per_s"] == pytest.approx((10 + 6) / 2.0)  # one engine pass made both


def test_sample_records_take_each_groups_first_sample() -> None:
    recs = _ragged(greedy=True).sample_records(3)
    assert [r["response"] for r in recs] == ["p0s0", "p1s0", "p2s0"]
    assert [r["group_size"] for r in recs] == [2, 3, 1]
    assert [r["greedy_response"] for r in recs] == ["g0", "g1", "g2"] and recs[1]["greedy_reward"] == 1.0


def test_greedy_samples_never_enter_the_training_rows() -> None:
    b = _ragged(greedy=True)
    assert len(b.train_rows()) == len(b.samples) == 6
    with pytest.raises(ValueError, match="algorithm.advantage=remax"):
        _ = _ragged().greedy_rewards


def test_inconsistent_batches_are_refused() -> None:
    b = _ragged()
    with pytest.raises(TypeError, match="RolloutBatch.equal_groups"):
        RolloutBatch(b.prompts, b.samples, b.results, 2, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="groups of 5 samples in all, but 6 samples"):
        RolloutBatch(b.prompts, b.samples, b.results, [2, 2, 1], {})
    with pytest.raises(ValueError, match="2 group sizes for 3 prompts"):
        RolloutBatch(b.prompts, b.samples, b.results, [3, 3], {})
    with pytest.raises(ValueError, match="extra_counts"):
        RolloutBatch(b.prompts, b.samples, b.results, [2, 3, 1], {}, extra_counts=[0, 0, 1])  # a group of 1 extra
    with pytest.raises(ValueError, match="one greedy sample and verdict per prompt"):
        RolloutBatch(b.prompts, b.samples, b.results, [2, 3, 1], {}, greedy_samples=[_sample("g")],
                     greedy_results=[VerifyResult(1.0, True)])
    eq = RolloutBatch.equal_groups(b.prompts, b.samples, b.results, 2, {})
    assert eq.group_sizes == [2, 2, 2] and eq.extra_counts == [0, 0, 0]


def test_pickled_batches_round_trip_and_old_ones_load() -> None:
    b = _ragged(greedy=True)
    again = pickle.loads(pickle.dumps(b))
    assert again.group_sizes == b.group_sizes and again.greedy_rewards == b.greedy_rewards
    # a checkpoint's carried batch from before ragged groups: one group_size, no extra or greedy fields
    old = RolloutBatch.__new__(RolloutBatch)
    eq = RolloutBatch.equal_groups([_row(0), _row(1)], [_sample("a")] * 4, [VerifyResult(1.0, True)] * 4, 2, {})
    state = {"prompts": eq.prompts, "samples": eq.samples, "results": eq.results, "group_size": 2, "timings": {}}
    old.__setstate__(state)
    assert old.group_sizes == [2, 2] and old.extra_counts == [0, 0] and not old.has_greedy
    assert old.group_ids == [0, 0, 1, 1]


# ---- the second round ---------------------------------------------------------------------------------


def test_band_edges_are_inclusive() -> None:
    rates = [0.0, 0.2, 0.5, 0.8, 1.0, 0.19, 0.81]
    band = ExtraSamplesConfig(n=2, min_pass_rate=0.2, max_pass_rate=0.8)
    assert sampling.extra_sample_groups(rates, band) == [1, 2, 3]
    assert sampling.extra_sample_groups(rates, ExtraSamplesConfig(n=2, min_pass_rate=0, max_pass_rate=0)) == [0]
    assert sampling.extra_sample_groups([1 / 3, 2 / 3], ExtraSamplesConfig(n=1, min_pass_rate=1 / 3,
                                                                           max_pass_rate=2 / 3)) == [0, 1]


def test_pass_rates_use_the_first_round_only() -> None:
    b = _ragged()  # group 1 is [1, 1 | 1]: its last sample came from the second round
    assert b.pass_rates() == [0.5, 1.0, 0.0]
    flipped = RolloutBatch(b.prompts, b.samples, b.results[:4] + [VerifyResult(0.0, False)] + b.results[5:],
                           b.group_sizes, {}, extra_counts=[0, 1, 0])
    assert flipped.pass_rates() == [0.5, 1.0, 0.0]  # the second-round verdict does not count
    assert flipped.pass_rates(first_round_only=False)[1] == pytest.approx(2 / 3)


class FakeEngines:
    """`RolloutGroup` stand-in. Prompt ``[p]``'s first-round sample i is correct when i < p, so its pass rate
    on ``n`` samples is p / n; second-round samples (a call with another ``n``) are always correct; the greedy
    response is correct when p >= 2. Records every call."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.version, self.timeout_s = n, [], 0, 30.0

    def generate_shards(self, prompt_ids: list[list[int]], n: int, temperature: float, top_p: float,
                        max_tokens: int, seed: int | None, greedy: bool = False) -> Any:
        self.calls.append({"prompts": [ids[0] for ids in prompt_ids], "n": n, "seed": seed, "greedy": greedy})
        first = n == self.n
        groups = []
        for ids in prompt_ids:
            p = ids[0]
            g = [_sample("1" if (i < p or not first) else "0") | {"weight_version": self.version} for i in range(n)]
            if greedy:
                g.append(_sample("G1" if p >= 2 else "G0", tokens=3) | {"weight_version": self.version})
            groups.append(g)
        yield 0, groups


class FakePool:
    def submit(self, samples: list[Any], names: list[str]) -> Future:
        done: Future = Future()
        done.set_result([VerifyResult(float(s.response.endswith("1")), s.response.endswith("1"), {})
                         for s in samples])
        return done


class CountingPrompts:
    """Prompts [0], [1], ..., [4], [0], ...: pass rates 0, 1/4, 2/4, 3/4, 1 with n = 4."""

    def __init__(self) -> None:
        self.counter = itertools.count()

    def next_batch(self, k: int) -> list[PromptRow]:
        return [_row(next(self.counter) % 5) for _ in range(k)]


def _cfg(*extra: str) -> Any:
    return load_recipe(DEFAULT_RECIPE, ["rollout.prompts_per_step=5", "rollout.n=4", "rollout.extra_samples.n=2",
                                        "rollout.extra_samples.min_pass_rate=0.25",
                                        "rollout.extra_samples.max_pass_rate=0.75", *extra])


def test_second_round_goes_to_the_band_with_its_own_seeds() -> None:
    cfg = _cfg()
    engines = FakeEngines(n=4)
    batch, _ = sampling.sample_step(cfg, engines, FakePool(), CountingPrompts(), step=3)  # type: ignore[arg-type]
    first, second = engines.calls
    assert first["n"] == 4 and second["n"] == 2 and second["prompts"] == [1, 2, 3]  # pass rates 1/4, 2/4, 3/4
    assert not first["greedy"] and not second["greedy"]
    assert second["seed"] == first["seed"] + 5 * 4  # after the first round's 5 prompts x 4 seeds
    assert batch.group_sizes == [4, 6, 6, 6, 4] and batch.extra_counts == [0, 2, 2, 2, 0]
    assert batch.group_ids == [0] * 4 + [1] * 6 + [2] * 6 + [3] * 6 + [4] * 4
    # group 1: its 4 first-round samples, then the 2 extra ones (always correct in the fake)
    assert [r.correct for r in batch.results[4:10]] == [True, False, False, False, True, True]
    assert batch.pass_rates() == [0.0, 0.25, 0.5, 0.75, 1.0]  # the first round's, as chosen
    m = batch.metrics()
    assert m["rollout/extra_samples"] == 6.0 and m["rollout/group_size_max"] == 6.0
    assert m["rollout/group_size_mean"] == pytest.approx(26 / 5) and "time/extra_samples_s" in m
    # the block of seeds per step leaves room for both rounds: the next step starts past them
    cfg_seed = cfg.run.seed * 1_000_000_007 + 3 * cfg.algorithm.max_generation_batches * 5 * (4 + 2)
    assert first["seed"] == cfg_seed


def test_no_prompt_in_the_band_means_no_second_call() -> None:
    engines = FakeEngines(n=4)
    cfg = _cfg("rollout.extra_samples.min_pass_rate=0.9", "rollout.extra_samples.max_pass_rate=0.95")
    batch, _ = sampling.sample_step(cfg, engines, FakePool(), CountingPrompts(), step=1)  # type: ignore[arg-type]
    assert len(engines.calls) == 1 and batch.group_sizes == [4] * 5
    assert batch.metrics()["rollout/extra_samples"] == 0.0


def test_dynamic_sampling_judges_whole_ragged_groups() -> None:
    # DAPO drops the all-equal groups (pass rate 0 or 1); the band's groups have signal and extra samples
    cfg = _cfg("algorithm.name=dapo", "rollout.prompts_per_step=5", "algorithm.max_generation_batches=3")
    batch, metrics = sampling.sample_step(cfg, FakeEngines(n=4), FakePool(), CountingPrompts(), step=1)  # type: ignore[arg-type]
    assert all(batch.group_has_signal()) and len(batch.prompts) == 5
    assert all(s == 6 for s in batch.group_sizes) and sum(batch.group_sizes) == len(batch.samples)
    assert metrics["dynamic_sampling/rounds"] == 2.0
    # all rounds' generation: 2 rounds x (5 x 4 + 3 x 2) samples of one token
    assert metrics["rollout/generated_tokens"] == 2 * 26


# ---- the greedy baseline ------------------------------------------------------------------------------


def test_remax_gets_one_greedy_response_per_prompt_from_the_same_call() -> None:
    cfg = _cfg("algorithm.advantage=remax")
    engines = FakeEngines(n=4)
    batch, _ = sampling.sample_step(cfg, engines, FakePool(), CountingPrompts(), step=1,  # type: ignore[arg-type]
                                    greedy=True)
    assert [c["greedy"] for c in engines.calls] == [True, False]  # with the first round, not the extra one
    assert [s["text"] for s in batch.greedy_samples or []] == ["G0", "G0", "G1", "G1", "G1"]
    assert batch.greedy_rewards == [0.0] * (4 + 6) + [1.0] * (6 + 6 + 4)  # per sample, by its prompt
    assert len(batch.greedy_rewards) == len(batch.samples) == len(batch.train_rows())
    assert all(not s["text"].startswith("G") for s in batch.samples)
    m = batch.metrics()
    assert m["rollout/greedy_accuracy"] == pytest.approx(0.6) and m["rollout/greedy_generated_tokens"] == 15.0
    # the flag comes from the loss module (the session passes wants_greedy(algorithm) to the rollout source)
    from rlvr.algorithms import get_algorithm
    from rlvr.algorithms.base import wants_greedy

    assert wants_greedy(get_algorithm(cfg.algorithm, max_new_tokens=8))
    assert not wants_greedy(get_algorithm(_cfg().algorithm, max_new_tokens=8))


def test_greedy_samples_follow_dynamic_sampling_selection() -> None:
    cfg = _cfg("algorithm.name=dapo", "algorithm.advantage=remax", "algorithm.max_generation_batches=3")
    batch, metrics = sampling.sample_step(cfg, FakeEngines(n=4), FakePool(), CountingPrompts(),  # type: ignore[arg-type]
                                          step=1, greedy=True)
    # kept groups: prompts 1, 2, 3 of each round; prompt [p]'s greedy response is correct when p >= 2
    assert [p.token_ids[0] for p in batch.prompts] == [1, 2, 3, 1, 2]
    assert [r.correct for r in batch.greedy_results or []] == [False, True, True, False, True]
    assert metrics["rollout/greedy_generated_tokens"] == 2 * 5 * 3  # every round's greedy responses


def test_the_worker_sends_greedy_requests_with_the_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """`RolloutWorker.generate` with ``greedy``: one vLLM call, the greedy requests (temperature 0, n = 1, no
    log-probs) after the sampled ones, and each group gets its greedy response last."""
    from rlvr.rollout.worker import RolloutWorker

    class Params:
        def __init__(self, **kw: Any) -> None:
            self.seed, self.logprobs = None, None  # vLLM's defaults
            self.__dict__.update(kw)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=Params))

    class Step:
        def __init__(self, lp: float) -> None:
            self.logprob = lp

    class LLM:
        calls: list[Any] = []

        def generate(self, requests: list[dict], params: list[Params], use_tqdm: bool, lora_request: Any) -> list:
            self.calls.append((requests, params))
            outs = []
            for req, p in zip(requests, params):
                tok = req["prompt_token_ids"][0]
                comps = [types.SimpleNamespace(token_ids=[tok, i], logprobs=[{tok: Step(-1.0)}, {i: Step(-2.0)}]
                                               if p.logprobs is not None else None,
                                               finish_reason="stop", text=f"{tok}-{p.temperature}-{i}")
                         for i in range(p.n)]
                outs.append(types.SimpleNamespace(outputs=comps))
            return outs

    worker = RolloutWorker.__new__(RolloutWorker)
    worker.llm, worker.lora_request, worker.weight_version = LLM(), None, 5
    groups = worker.generate([[10], [20]], 3, 1.0, 1.0, 8, seed=100, greedy=True)
    (requests, params), = LLM.calls
    assert [r["prompt_token_ids"] for r in requests] == [[10], [20], [10], [20]]
    assert [(p.n, p.temperature, p.seed) for p in params] == [(3, 1.0, 100), (3, 1.0, 103), (1, 0.0, None),
                                                              (1, 0.0, None)]
    assert [len(g) for g in groups] == [4, 4]
    assert [s["text"] for s in groups[1]] == ["20-1.0-0", "20-1.0-1", "20-1.0-2", "20-0.0-0"]
    assert groups[0][0]["logprobs"] == [-1.0, -2.0] and groups[0][-1]["logprobs"] == []
    assert len(worker.generate([[10]], 2, 1.0, 1.0, 8, seed=0)[0]) == 2  # without greedy: n per group


# ---- asynchronous rollouts ------------------------------------------------------------------------------


def test_the_async_producer_makes_ragged_batches_with_greedy_baselines() -> None:
    from rlvr.rollout.producer import Producer

    cfg = _cfg("rollout.max_staleness=1", "run.steps=3", "algorithm.advantage=remax", "ray.call_timeout_s=20")
    engines = FakeEngines(n=4)
    prompts = PromptSampler([_row(k % 5) for k in range(20)], shuffle=False, seed=0)
    producer = Producer(cfg, engines, FakePool(), prompts, version=0, greedy=True)  # type: ignore[arg-type]
    try:
        got = []
        for step in (1, 2, 3):
            batch, metrics = producer.next_batch(step, {})
            got.append(batch)
            producer.before_sync(step)
            engines.version = step
            producer.after_sync(step)
    finally:
        producer.close()
    for b in got:
        assert sorted(b.group_sizes) == [4, 4, 6, 6, 6] and b.has_greedy and len(b.greedy_rewards) == 26
        assert {s["weight_version"] for s in b.samples} == {b.samples[0]["weight_version"]}  # one version per batch


def test_partial_rollouts_refuse_the_greedy_baseline() -> None:
    with pytest.raises(RecipeError, match="advantage=remax with rollout.partial=true"):
        load_recipe(DEFAULT_RECIPE, ["algorithm.advantage=remax", "rollout.max_staleness=1", "rollout.partial=true"])
    # extra samples are fine with partial rollouts: the second round joins the segments like any prompt
    load_recipe(DEFAULT_RECIPE, ["rollout.extra_samples.n=2", "rollout.max_staleness=1", "rollout.partial=true"])
    from rlvr.rollout.producer import Producer, Segments, _Clock

    partial = load_recipe(DEFAULT_RECIPE, ["rollout.max_staleness=1", "rollout.partial=true"])
    with pytest.raises(ValueError, match="use rollout.partial=false"):  # any loss module that wants_greedy
        Producer(partial, FakeEngines(n=8), FakePool(), CountingPrompts(), version=0, greedy=True)  # type: ignore[arg-type]

    class _Group:
        timeout_s, workers = 5.0, []

    segments = Segments(_Group(), 8, _Clock())  # type: ignore[arg-type]
    try:
        with pytest.raises(ValueError, match="greedy"):
            next(segments.generate_shards([[1]], 2, 1.0, 1.0, 8, seed=None, greedy=True))
    finally:
        segments.close()


# ---- the learner's mini-batches ---------------------------------------------------------------------------


def test_mini_batches_are_cut_at_group_boundaries() -> None:
    assert group_mini_batches([2, 3, 2, 4], 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]
    assert group_mini_batches([4, 6, 4], 1) == [list(range(14))]
    assert group_mini_batches([1, 2, 3, 4], 4) == [[0], [1, 2], [3, 4, 5], [6, 7, 8, 9]]
    with pytest.raises(ValueError, match="3 groups cannot be cut into 2 mini-batches"):
        group_mini_batches([2, 2, 2], 2)
    with pytest.raises(ValueError, match="non-empty groups"):
        group_mini_batches([2, 0], 1)


def test_learner_group_trains_each_mini_batch_on_whole_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlvr.learner.group as group_module
    from rlvr.learner.group import LearnerGroup

    seen: list[list[int]] = []

    class Rank:
        class train_step:  # noqa: N801 - mimics a Ray actor method handle
            @staticmethod
            def remote(rows: TrainRows, n_tok: float, n_seq: float, kl_coef: float) -> dict[str, float]:
                seen.append([ids[0] for ids in rows.input_ids])
                return {"part/loss": 1.0, "grad_norm": 1.0, "skipped": 0.0, "lr": 1e-3}

    monkeypatch.setattr(group_module, "wait", lambda refs, timeout_s, what: refs)
    cfg = load_recipe(DEFAULT_RECIPE, ["rollout.prompts_per_step=4", "rollout.n=2", "algorithm.mini_batches=2",
                                       "algorithm.epochs=2"])
    group = LearnerGroup.__new__(LearnerGroup)
    group.cfg, group.timeout_s, group.role, group.workers = cfg, 10.0, "actor", [Rank()]
    sizes = [2, 4, 2, 3]  # rows are tagged with their group in the first token
    gid = [k for k, g in enumerate(sizes) for _ in range(g)]
    rows = TrainRows(input_ids=[[k, 5, 6] for k in gid], prompt_lens=[1] * len(gid),
                     advantages=[[1.0, 1.0]] * len(gid))
    out = group.train(rows, sizes)
    assert seen == [[0, 0, 1, 1, 1, 1], [2, 2, 3, 3, 3]] * 2  # 2 epochs x 2 mini-batches of 2 whole groups
    assert out["actor/optimizer_steps"] == 4.0
    with pytest.raises(ValueError, match="groups of 10 rows in all, but 11 rows"):
        group.train(rows, [2, 4, 2, 2])
