"""Score samples in worker processes with a hard per-sample deadline.

Why processes: verifier code runs on untrusted model output (sympy on adversarial LaTeX, later
executed code), so a sample can hang or crash the interpreter. Signal-based timeouts only work on
the main thread of the main interpreter, which rules them out inside Ray actors and threaded
drivers; the only deadline that always holds is killing the process that overran it.

Each worker owns one ``Pipe`` and runs one task at a time: one sample, or for a verifier with
``score_batch`` a chunk of up to its ``batch_size`` samples (a model judge sends a chunk as one
request). The parent loop hands work to idle workers, waits on all pipes until the earliest deadline,
and replaces any worker that overran (killed: reason "timeout"), died (reason "crash") or closed its
pipe. A deadline covers one task, so a batched verifier's deadline covers its whole chunk.

Workers are started with the ``spawn`` method because the parent may hold Ray and other threads,
which a plain ``fork`` would copy mid-lock; as with any spawn user, a script that builds a pool must
guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from rlvr.verify.base import VerifyResult, VerifySample, batch_size_of, scores_batches
from rlvr.verify.registry import load_verifier

__all__ = ["VerifierPool", "VerifierPoolError", "VerifierSpec"]


@dataclass(frozen=True)
class VerifierSpec:
    """How to build one named verifier: ``spec`` and ``kwargs`` as for :func:`load_verifier`.

    ``timeout_s`` overrides the pool's deadline for this verifier's tasks (a model judge scoring a chunk
    of 32 samples needs longer than a regex).
    """

    spec: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None


VerifierSpecs = Mapping[str, "VerifierSpec | tuple[str, Mapping[str, Any]]"]


class VerifierPoolError(RuntimeError):
    """The pool cannot score: a worker failed to start, or the pool is closed."""


@dataclass
class _Task:
    indices: list[int]
    verifier: str
    started: float
    deadline: float


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    started: float
    ready: bool = False
    task: _Task | None = None


class VerifierPool:
    """A fixed set of worker processes, each holding every configured verifier.

    Args:
        verifiers: ``{name: VerifierSpec}`` (or ``{name: (spec, kwargs)}``); ``spec`` as for
            :func:`rlvr.verify.load_verifier`. Samples pick their verifier by ``name``.
        num_workers: worker processes; verification is CPU-bound, so about one per spare core.
        timeout_s: hard deadline per sample, measured from hand-off to a worker.
        base_dir: where relative ``file.py:attr`` specs are looked up (e.g. the recipe's directory).
        start_timeout_s: how long a worker may take to import and build its verifiers.
        failure_score: reward for a timeout, crash or error. Set it to the verifier's worst score
            when that is below 0 (e.g. -1 in a ±1 scheme): otherwise a policy is paid for making the
            verifier hang.
        health: called every ``health_interval_s`` while a batch is being scored; it raises when
            something the verifiers depend on is gone (a model judge's server), and the batch fails
            with that error at once, instead of every sample waiting out its deadline and scoring
            ``failure_score`` as if the policy had earned it.

    Verifiers are also built once in the parent, so a bad spec raises here, before any worker
    starts; a verifier with a ``check()`` method (a model judge probing its endpoint) has it called
    there too. Not re-entrant: concurrent ``score_batch`` calls are serialised by a lock.
    """

    def __init__(
        self,
        verifiers: VerifierSpecs,
        num_workers: int = 2,
        timeout_s: float = 10.0,
        base_dir: str | Path | None = None,
        start_timeout_s: float = 60.0,
        failure_score: float = 0.0,
        health: Callable[[], None] | None = None,
        health_interval_s: float = 2.0,
    ) -> None:
        if not verifiers:
            raise ValueError("VerifierPool needs at least one verifier")
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError(
                f"timeouts must be > 0, got timeout_s={timeout_s}, start_timeout_s={start_timeout_s}"
            )
        self._specs = {name: _as_spec(value) for name, value in verifiers.items()}
        self._base_dir = str(base_dir) if base_dir is not None else None
        self._batch_sizes: dict[str, int] = {}
        for name, vs in self._specs.items():
            built = load_verifier(vs.spec, vs.kwargs, self._base_dir)  # fail fast, with the real exception
            if callable(getattr(built, "check", None)):
                built.check()  # e.g. a model judge: is the endpoint up, does it serve the model?
            self._batch_sizes[name] = _batch_size(name, built)
        self._timeouts = {name: vs.timeout_s or timeout_s for name, vs in self._specs.items()}
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._failure_score = failure_score
        self._health, self._health_interval_s, self._health_at = health, health_interval_s, 0.0
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._closed = False
        self._async: ThreadPoolExecutor | None = None
        self._workers: list[_Worker] = []
        try:
            self._workers.extend(self._spawn() for _ in range(num_workers))
            while not all(w.ready for w in self._workers):
                self._step(results=[])
        except BaseException:
            self.close()
            raise

    @property
    def verifier_names(self) -> list[str]:
        """The names samples may ask for, in configuration order."""
        return list(self._specs)

    def score_batch(
        self, samples: Sequence[VerifySample], verifier_names: Sequence[str]
    ) -> list[VerifyResult]:
        """Score ``samples[i]`` with verifier ``verifier_names[i]``; results come back in input order.

        Timeouts, crashes and exceptions inside a verifier become results with ``score=failure_score``
        and ``details["reason"]`` set to "timeout", "crash" or "error: <type>: <msg>"; they never
        raise. Every result's details carry ``verifier`` and ``elapsed_ms`` (hand-off to answer; for a
        batched verifier, the time of its whole chunk).
        """
        if len(samples) != len(verifier_names):
            raise ValueError(f"{len(samples)} samples but {len(verifier_names)} verifier names")
        unknown = sorted(set(verifier_names) - set(self._specs))
        if unknown:
            raise ValueError(f"unknown verifier(s) {unknown}; this pool has: {', '.join(self._specs)}")
        results: list[VerifyResult | None] = [None] * len(samples)
        queue = deque(self._chunks(verifier_names))
        with self._lock:
            if self._closed:
                raise VerifierPoolError("VerifierPool is closed")
            try:
                while queue or any(w.task for w in self._workers):
                    for worker in self._workers:
                        if worker.ready and worker.task is None and queue:
                            name, indices = queue.popleft()
                            now = time.monotonic()
                            task = _Task(indices, name, now, now + self._timeouts[name])
                            if not self._dispatch(worker, task, [samples[i] for i in indices]):
                                queue.appendleft((name, indices))
                    self._step(results)
            except BaseException:
                # Workers may still be busy with this batch; their late answers would be taken for the
                # next batch's. Closing is the only state that cannot be misread.
                self._close_locked()
                raise
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def submit(self, samples: Sequence[VerifySample], verifier_names: Sequence[str]) -> Future[list[VerifyResult]]:
        """:meth:`score_batch` in the background, so scoring overlaps whatever the caller does next
        (e.g. generation still running on other engines). Submissions run one after another."""
        if self._async is None:
            self._async = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlvr-verify")
        return self._async.submit(self.score_batch, list(samples), list(verifier_names))

    def _chunks(self, verifier_names: Sequence[str]) -> list[tuple[str, list[int]]]:
        """Tasks in input order: single samples, or runs of up to ``batch_size`` for batched verifiers."""
        by_name: dict[str, list[int]] = {}
        for i, name in enumerate(verifier_names):
            by_name.setdefault(name, []).append(i)
        chunks = []
        for name, indices in by_name.items():
            size = self._batch_sizes[name]
            chunks += [(name, indices[k : k + size]) for k in range(0, len(indices), size)]
        return sorted(chunks, key=lambda chunk: chunk[1][0])

    def close(self) -> None:
        """Kill and reap every worker. Idempotent."""
        if self._async is not None:
            self._async.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._close_locked()

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- parent-side bookkeeping ---------------------------------------------------------------

    def _step(self, results: list[VerifyResult | None]) -> None:
        """Wait for one round of messages (or the earliest deadline, or the next health check) and act on it."""
        timeout = self._seconds_to_next_deadline()
        if self._health is not None:
            now = time.monotonic()
            if now >= self._health_at:
                self._health_at = now + self._health_interval_s
                self._health()  # raises: the batch fails with the reason (`score_batch` closes the pool)
            timeout = min(timeout, max(0.0, self._health_at - now))
        readable = wait([w.conn for w in self._workers], timeout=timeout)
        for slot, worker in enumerate(self._workers):
            if worker.conn in readable:
                self._receive(slot, worker, results)
        now = time.monotonic()
        for slot, worker in enumerate(self._workers):
            if not worker.ready and now - worker.started >= self._start_timeout_s:
                raise VerifierPoolError(f"verifier worker did not start within {self._start_timeout_s}s")
            if worker.task and now >= worker.task.deadline:
                self._fail(worker.task, results, "timeout", timeout_s=self._timeouts[worker.task.verifier])
                self._replace(slot)

    def _receive(self, slot: int, worker: _Worker, results: list[VerifyResult | None]) -> None:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=5.0)
            exitcode = worker.process.exitcode
            if not worker.ready:
                raise VerifierPoolError(
                    f"verifier worker exited during start-up (exit code {exitcode})"
                ) from None
            if worker.task:
                self._fail(worker.task, results, "crash", exitcode=exitcode)
            self._replace(slot)
            return
        if kind == "ready":
            worker.ready = True
        elif kind == "failed":
            raise VerifierPoolError(f"verifier worker failed to start:\n{payload}")
        else:
            assert worker.task is not None
            if kind == "ok":
                for index, (item_kind, item) in zip(worker.task.indices, payload):
                    if item_kind == "ok":
                        self._finish(worker.task, index, results, item)
                    else:
                        self._finish(worker.task, index, results, self._failure(item))
            else:
                self._fail(worker.task, results, payload)
            worker.task = None

    def _dispatch(self, worker: _Worker, task: _Task, samples: list[VerifySample]) -> bool:
        """Hand ``task`` to an idle worker; False if the worker died while idle (``_step`` replaces it)."""
        try:
            worker.conn.send((task.verifier, samples))
        except (BrokenPipeError, ConnectionResetError):
            return False
        worker.task = task
        return True

    def _seconds_to_next_deadline(self) -> float:
        deadlines = [w.started + self._start_timeout_s for w in self._workers if not w.ready]
        deadlines += [w.task.deadline for w in self._workers if w.task]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else self._timeout_s

    def _finish(self, task: _Task, index: int, results: list[VerifyResult | None], result: VerifyResult) -> None:
        result.details["verifier"] = task.verifier
        result.details["elapsed_ms"] = (time.monotonic() - task.started) * 1000.0
        results[index] = result

    def _failure(self, reason: str, **details: Any) -> VerifyResult:
        return VerifyResult(score=self._failure_score, correct=False, details={"reason": reason, **details})

    def _fail(self, task: _Task, results: list[VerifyResult | None], reason: str, **details: Any) -> None:
        for index in task.indices:
            self._finish(task, index, results, self._failure(reason, **details))

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe()
        # daemon: if the owner exits without close(), multiprocessing kills the workers at exit
        # instead of joining processes that would wait on their pipe forever. (Verifiers therefore
        # cannot start multiprocessing children of their own; subprocess is fine.)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, self._specs, self._base_dir),
            name="rlvr-verifier",
            daemon=True,
        )
        process.start()
        child_conn.close()  # so the parent sees EOF on parent_conn when the child dies
        return _Worker(process, parent_conn, started=time.monotonic())

    def _replace(self, slot: int) -> None:
        _kill(self._workers[slot])
        self._workers[slot] = self._spawn()

    def _close_locked(self) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            _kill(worker)


def _kill(worker: _Worker) -> None:
    """SIGKILL and reap (no zombie); a worker stuck in a verifier gets no chance to clean up."""
    if worker.process.is_alive():
        worker.process.kill()
    worker.process.join(timeout=5.0)
    worker.conn.close()


# -- worker side ---------------------------------------------------------------------------------


def _worker_main(conn: Connection, specs: dict[str, VerifierSpec], base_dir: str | None) -> None:
    """Build the verifiers, report ready (or the traceback), then score until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us
    _exit_with_parent(os.getppid())
    try:
        verifiers = {name: load_verifier(vs.spec, vs.kwargs, base_dir) for name, vs in specs.items()}
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            name, samples = conn.recv()
        except EOFError:
            return
        reply = _score_task(verifiers[name], samples)
        try:
            conn.send(reply)
        except Exception as exc:  # unpicklable details: report it instead of dying as a "crash"
            conn.send(("error", f"error: {type(exc).__name__}: cannot send result: {exc}"))


def _exit_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """Exit when the pool's process is gone, even mid-verification.

    An owner that is SIGKILLed never closes the pool, and a worker stuck in a verifier never reads the
    EOF on its pipe. PR_SET_PDEATHSIG would fire when the *thread* that spawned the worker exits (pools
    respawn workers from whichever thread is scoring), so a watchdog thread compares the parent pid
    instead. It needs the GIL, which pure-Python work (sympy) hands over every few milliseconds; a C
    extension that holds it (a catastrophic ``re`` match) delays the exit until it returns.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="rlvr-verify-watchdog", daemon=True).start()


def _score_task(verifier: Any, samples: list[VerifySample]) -> tuple[str, Any]:
    """("ok", [(kind, result_or_reason) per sample]) or ("error", reason) for the whole task."""
    if len(samples) == 1 or not scores_batches(verifier):
        return "ok", [_score_one(verifier, s) for s in samples]
    try:
        results = list(verifier.score_batch(samples))
    except BaseException as exc:
        return "error", f"error: {type(exc).__name__}: {exc}"
    if len(results) != len(samples):
        return "error", f"error: ValueError: score_batch() returned {len(results)} results for {len(samples)} samples"
    return "ok", [_checked(r) for r in results]


def _score_one(verifier: Any, sample: VerifySample) -> tuple[str, Any]:
    try:
        result = verifier.score(sample)
    except BaseException as exc:  # SystemExit and math_verify's TimeoutException are BaseExceptions
        return "error", f"error: {type(exc).__name__}: {exc}"
    return _checked(result)


def _checked(result: Any) -> tuple[str, Any]:
    if not isinstance(result, VerifyResult):
        return "error", f"error: TypeError: score() returned {type(result).__name__}, expected VerifyResult"
    return "ok", result


def _as_spec(value: VerifierSpec | tuple[str, Mapping[str, Any]]) -> VerifierSpec:
    if isinstance(value, VerifierSpec):
        return VerifierSpec(value.spec, dict(value.kwargs), value.timeout_s)
    spec, kwargs = value
    return VerifierSpec(spec, dict(kwargs))


def _batch_size(name: str, verifier: Any) -> int:
    try:
        return batch_size_of(verifier)
    except ValueError as err:
        raise ValueError(f"verifier {name!r}: {err}") from None
