"""The asynchronous rollout producer's schedule, without engines: a fake engine group records which policy
version every batch was generated under, a fake verifier pool scores at once. The schedule is what makes
asynchronous runs reproducible (batch j always samples from version max(start, j - 1 - K)) and bounded
(no sample older than K versions), and a checkpoint must carry exactly the finished batches."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

from rlvr.config import RecipeError, load_recipe
from rlvr.cpu_pinning import cores_for, wants_pinning
from rlvr.data.dataset import PromptRow, PromptSampler
from rlvr.remote import WorkerError
from rlvr.rollout.batch import RolloutBatch
from rlvr.rollout.producer import Producer, check_async_layout, staleness_metrics
from rlvr.verify import VerifyResult
from tests.conftest import DEFAULT_RECIPE


class FakeEngines:
    """Stands in for `RolloutGroup`: holds a policy version like the engines do and stamps each sample."""

    def __init__(self, delay_s: float = 0.0, fail_at_call: int | None = None) -> None:
        self.version, self.delay_s, self.fail_at_call = 0, delay_s, fail_at_call
        self.calls: list[tuple[int | None, int]] = []  # (seed, version) per generate call
        self.timeout_s = 30.0

    def generate_shards(self, prompt_ids: list[list[int]], n: int, temperature: float, top_p: float,
                        max_tokens: int, seed: int | None, greedy: bool = False) -> Any:
        if self.fail_at_call is not None and len(self.calls) == self.fail_at_call:
            raise WorkerError("rollout generate: rollout engine 0 died")
        self.calls.append((seed, self.version))
        time.sleep(self.delay_s)
        groups = [[{"token_ids": [7] * (1 + (k + i) % 3), "logprobs": [-0.5] * (1 + (k + i) % 3),
                    "finish_reason": "stop", "text": str(ids[-1] + i), "weight_version": self.version}
                   for i in range(n)] for k, ids in enumerate(prompt_ids)]
        yield 0, groups


class FakePool:
    def submit(self, samples: list[Any], names: list[str]) -> Future:
        done: Future = Future()
        done.set_result([VerifyResult(score=float(int(s.response) % 2), correct=bool(int(s.response) % 2))
                         for s in samples])
        return done


def _rows(k: int) -> list[PromptRow]:
    return [PromptRow(f"Q{i}", [i], str(i), None, "fake") for i in range(k)]


def _producer(engines: FakeEngines, k: int, steps: int = 6, version: int = 0, carried: list | None = None,
              prompts: PromptSampler | None = None, extra: list[str] | None = None) -> Producer:
    cfg = load_recipe(DEFAULT_RECIPE, [f"rollout.max_staleness={k}", f"run.steps={steps}", "rollout.prompts_per_step=4",
                                       "rollout.n=2", "ray.call_timeout_s=20", *(extra or [])])
    prompts = prompts or PromptSampler(_rows(40), shuffle=True, seed=3)
    return Producer(cfg, engines, FakePool(), prompts, version=version, carried=carried)  # type: ignore[arg-type]


def _train(producer: Producer, engines: FakeEngines, first: int, last: int, hook: Any = None) -> list[Any]:
    """The trainer's side of the protocol; the engines change version only in the sync, as WeightSync does."""
    got = []
    for step in range(first, last + 1):
        batch, _ = producer.take(step)
        got.append(batch)
        time.sleep(0.01)  # "training"
        producer.before_sync(step)
        engines.version = step
        producer.after_sync(step)
        if hook is not None:
            hook(step)
    return got


@pytest.mark.parametrize("k", [1, 2, 3])
def test_batch_j_samples_from_version_j_minus_1_minus_k(k: int) -> None:
    engines = FakeEngines(delay_s=0.02)
    producer = _producer(engines, k)
    try:
        batches = _train(producer, engines, 1, 6)
    finally:
        producer.close()
    versions = [b.batch.samples[0]["weight_version"] for b in batches]
    assert versions == [max(0, j - 1 - k) for j in range(1, 7)]
    for j, b in enumerate(batches, start=1):
        lag = staleness_metrics(b.batch, j - 1)
        assert lag["rollout/staleness_max"] == min(k, j - 1) <= k
    assert len(engines.calls) == 6  # no batch beyond the last step
    # seeds follow the step, as in the synchronous loop: the same prompts and seeds whatever K is
    cfg = load_recipe(DEFAULT_RECIPE)
    per_round = 4 * 2
    assert [s for s, _ in engines.calls] == [cfg.run.seed * 1_000_000_007 + j * 10 * per_round for j in range(1, 7)]


def test_same_prompts_as_the_synchronous_order() -> None:
    sync_prompts = PromptSampler(_rows(40), shuffle=True, seed=3)
    expected = [[r.text for r in sync_prompts.next_batch(4)] for _ in range(5)]
    engines = FakeEngines()
    producer = _producer(engines, 1, steps=5)
    try:
        batches = _train(producer, engines, 1, 5)
    finally:
        producer.close()
    assert [[r.text for r in b.batch.prompts] for b in batches] == expected


def test_the_sync_waits_for_the_batches_that_must_use_the_old_weights() -> None:
    engines = FakeEngines(delay_s=0.2)
    producer = _producer(engines, 1, steps=3)
    try:
        producer.take(1)
        waited = producer.before_sync(1)  # batch 2 must finish on version 0 first
        assert waited > 0.1
        assert [v for _, v in engines.calls] == [0, 0]
        engines.version = 1
        producer.after_sync(1)
        producer.take(2)
        producer.before_sync(2)
        assert [v for _, v in engines.calls] == [0, 0, 1]
    finally:
        producer.close()


def test_drain_carries_the_finished_batches_and_a_resumed_producer_continues_exactly() -> None:
    # uninterrupted
    engines = FakeEngines()
    straight = _producer(engines, 1, steps=6)
    try:
        reference = _train(straight, engines, 1, 6)
    finally:
        straight.close()

    # checkpoint after step 2's sync, then a "resumed" producer from the carried batches and sampler state
    engines = FakeEngines()
    prompts = PromptSampler(_rows(40), shuffle=True, seed=3)
    first = _producer(engines, 1, steps=6, prompts=prompts)
    saved: dict[str, Any] = {}

    def checkpoint(step: int) -> None:
        if step == 2:
            saved["carried"], saved["sampler"] = first.drain()
            first.release()

    try:
        _train(first, engines, 1, 2, hook=checkpoint)
    finally:
        first.close()
    assert [p.step for p in saved["carried"]] in ([3], [3, 4])  # 3 must be done; 4 may have started on version 2
    resumed_prompts = PromptSampler(_rows(40), shuffle=True, seed=99)
    resumed_prompts.load_state_dict(saved["sampler"])
    engines2 = FakeEngines()
    engines2.version = 2
    second = _producer(engines2, 1, steps=6, version=2, carried=saved["carried"], prompts=resumed_prompts)
    try:
        rest = _train(second, engines2, 3, 6)
    finally:
        second.close()

    def key(p: Any) -> Any:
        return [r.text for r in p.batch.prompts], [s["weight_version"] for s in p.batch.samples], p.batch.rewards

    assert [key(p) for p in rest] == [key(p) for p in reference[2:]]


def test_an_engine_failure_reaches_the_learner() -> None:
    engines = FakeEngines(fail_at_call=1)
    producer = _producer(engines, 1, steps=4)
    try:
        producer.take(1)
        with pytest.raises(WorkerError, match="rollout engine 0 died"):
            producer.before_sync(1)  # waits for batch 2, whose generation failed
    finally:
        producer.close()


def test_a_missing_batch_times_out_with_a_message() -> None:
    engines = FakeEngines()
    producer = _producer(engines, 1, steps=2, extra=["ray.call_timeout_s=0.5"])
    try:
        producer.take(1)
        started = time.monotonic()
        with pytest.raises(WorkerError, match="rollout batch of step 3 did not arrive within"):
            producer.take(3)  # beyond run.steps: never produced
        assert time.monotonic() - started < 5
    finally:
        producer.close()
    assert not any(t.name == "rlvr-producer" and t.is_alive() for t in threading.enumerate())


def test_staleness_metrics_count_tokens_per_version() -> None:
    samples = [{"token_ids": [1, 2, 3, 4], "weight_version": 3, "versions": [3, 3, 4, 5]},
               {"token_ids": [1, 2], "weight_version": 5}]
    batch = RolloutBatch.equal_groups(_rows(1), samples, [VerifyResult(1.0, True)] * 2, 2, {})
    m = staleness_metrics(batch, 5)
    assert m["rollout/staleness/2"] == m["rollout/staleness/0"] == 0.5
    assert m["rollout/staleness_mean"] == 1.0 and m["rollout/staleness_max"] == 2.0
    assert m["rollout/off_policy_token_fraction"] == pytest.approx(3 / 6)


def test_colocated_gpu_runs_cannot_be_asynchronous() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["rollout.max_staleness=1"])
    with pytest.raises(ValueError, match="resources.colocate=false"):
        check_async_layout(cfg, gpus=2)
    check_async_layout(cfg, gpus=0)  # CPU: pinned cores give the overlap
    check_async_layout(load_recipe(DEFAULT_RECIPE, ["rollout.max_staleness=1", "resources.colocate=false"]), gpus=2)
    check_async_layout(load_recipe(DEFAULT_RECIPE), gpus=2)
    with pytest.raises(RecipeError, match="colocate=true on GPUs"):  # known from the recipe: before anything starts
        load_recipe(DEFAULT_RECIPE, ["rollout.max_staleness=1", "resources.gpus_per_node=8"])


def test_partial_needs_staleness_and_pinning_follows_the_mode() -> None:
    with pytest.raises(ValueError, match="partial=true needs rollout.max_staleness >= 1"):
        load_recipe(DEFAULT_RECIPE, ["rollout.partial=true"])
    assert load_recipe(DEFAULT_RECIPE, ["resources.pin_cpus=on"]).resources.pin_cpus == "on"  # YAML's bare on
    assert wants_pinning("auto", 1) and not wants_pinning("auto", 0)
    assert wants_pinning("on", 0) and not wants_pinning("off", 2)
    assert cores_for("engines", [3, 1, 2, 0]) == [0, 1] and cores_for("learners", [0, 1, 2, 3]) == [2, 3]
    assert cores_for("engines", [0, 1, 2]) == [0] and cores_for("learners", [0, 1, 2]) == [1, 2]
    assert cores_for("engines", [5]) == cores_for("learners", [5]) == [5]


class FakeSegmentEngine:
    """Stands in for a `RolloutWorker` in partial rollouts: a fresh request's i-th response wants
    3 + 20 * ((prompt + i) % 5) tokens and says so in its first token (1000 + length), the others count
    up from 2, so a continuation can be checked; every token is sampled by the version loaded now."""

    def __init__(self) -> None:
        self.version, self.requests = 0, []
        engine = self

        class _Method:
            def remote(self, requests: list[dict], temperature: float, top_p: float) -> dict:
                return engine.generate_segment(requests)

        self.generate_segment_remote = _Method()

    def generate_segment(self, requests: list[dict]) -> dict:
        self.requests.append(requests)
        if len(self.requests) == 3:  # a weight update landed after the second segment (Ray runs calls in order)
            self.version = 1
        outputs = []
        for r in requests:
            done = len(r["ids"]) - r["response_start"]
            per = []
            for i in range(r["n"]):
                want = r["ids"][r["response_start"]] - 1000 if done else 3 + 20 * ((r["ids"][0] + i) % 5)
                full = [1000 + want] + list(range(2, want + 1))
                new = full[done:min(want, done + r["max_tokens"])]
                finish = "stop" if done + len(new) == want else "length"
                per.append({"token_ids": new, "logprobs": [-1.0] * len(new), "finish_reason": finish,
                            "text": f"{want}:{done + len(new)}"})
            outputs.append(per)
        return {"version": self.version, "outputs": outputs}


class _FakeGroup:
    def __init__(self, engine: FakeSegmentEngine) -> None:
        self.timeout_s = 10.0
        self.workers = [type("W", (), {"generate_segment": engine.generate_segment_remote})()]


def test_partial_rollouts_continue_across_a_weight_update(monkeypatch: pytest.MonkeyPatch) -> None:
    import rlvr.rollout.producer as producer_module
    from rlvr.rollout.producer import Segments, _Clock

    monkeypatch.setattr(producer_module, "wait", lambda refs, timeout_s, what: refs)  # fake "refs" are results
    engine = FakeSegmentEngine()
    segments = Segments(_FakeGroup(engine), segment_tokens=16, clock=_Clock())  # type: ignore[arg-type]
    finished: dict[int, list] = {}
    try:
        def consume() -> None:
            for k, (group,) in segments.generate_shards([[100], [202], [303]], 2, 1.0, 1.0, 50, seed=10):
                finished[k] = group

        thread = threading.Thread(target=consume)
        segments.pause(5.0)  # nothing runs until resumed: the engines hold still for a "sync"
        thread.start()
        time.sleep(0.1)
        assert engine.requests == []
        segments.resume()
        thread.join(timeout=10)
        segments.pause(5.0)
        assert not segments._running
    finally:
        segments.close()
    assert sorted(finished) == [0, 1, 2]
    first = engine.requests[0]
    assert [(r["ids"], r["n"], r["seed"]) for r in first] == [([100], 2, None), ([202], 2, None), ([303], 2, None)]
    for k, group in finished.items():
        for i, sample in enumerate(group):
            wanted = 3 + 20 * (([100, 202, 303][k] + i) % 5)
            want = min(wanted, 50)  # the budget of 50 truncates the longer ones
            assert sample["token_ids"] == ([1000 + wanted] + list(range(2, wanted + 1)))[:want]  # nothing lost
            assert sample["finish_reason"] == ("length" if wanted > 50 else "stop")
            assert len(sample["logprobs"]) == len(sample["versions"]) == want
            assert sample["text"] == f"{wanted}:{want}"  # the engine's text of the whole response so far
            # segments of 16: tokens of the first two segments by version 0, later ones by version 1
            assert sample["versions"] == [0 if t < 32 else 1 for t in range(want)]
            assert sample["weight_version"] == 0
    continued = [r for reqs in engine.requests[1:] for r in reqs]
    assert all(r["n"] == 1 and r["max_tokens"] <= 16 for r in continued)
    assert sum(s["finish_reason"] == "length" for g in finished.values() for s in g) == 3  # 63, 63 and 83 wanted
    assert segments.take_reprefilled() == sum(len(r["ids"]) - r["response_start"] for r in continued) > 0
    assert segments.take_reprefilled() == 0  # counted once
