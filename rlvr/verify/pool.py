"""Score samples in worker processes with a hard per-sample deadline.

Why processes: verifier code runs on untrusted model output (sympy on adversarial LaTeX, later
executed code), so a sample can hang or crash the interpreter. Signal-based timeouts only work on
the main thread of the main interpreter, which rules them out inside Ray actors and threaded
drivers; the only deadline that always holds is killing the process that overran it.

Each worker owns one ``Pipe`` and runs one task at a time: one sample, or for a verifier with
``score_batch`` a chunk of up to its ``batch_size`` samples (a model judge sends a chunk as one
request). The parent loop hands work to idle workers, waits on all pipes until the earliest deadline,
and replaces any worker that overran (killed: reason "timeout"), died (reason "crash", with the exit code
or signal in the details) or closed its pipe. A deadline covers one task, so a batched verifier's deadline
covers its whole chunk. A result is checked before it is passed on: anything but a ``VerifyResult`` with a
finite real ``score``, a bool ``correct`` and a dict of ``details`` is an error for its sample.

Each worker is the leader of its own session and process group, and a kill (deadline, crash, ``close``) is
a SIGKILL to the whole group, so whatever a verifier started (a subprocess, a shell pipeline) dies with it.
Workers' stdin is ``/dev/null`` and their stdout and stderr go to ``log_path`` (``/dev/null`` without
one), never to the owner's terminal or pipes: a process a verifier starts outside the group cannot keep
the caller's output open. (A process that starts a session of its own escapes the group kill; the code
sandbox's do, and die with the worker through their parent-death signal.)

Each worker caps its address space (``RLIMIT_AS``, soft limit) at ``worker_memory_gib``: a verifier that
allocates without bound (sympy expanding an adversarial expression) gets ``MemoryError`` instead of
taking the node's memory; its sample scores ``failure_score`` with reason "error: memory: ..." and the
worker is replaced, as it may be left in a bad state. The cap counts virtual memory, not resident: a
worker with the built-in verifiers peaks at about 0.2 GiB of it (``VmPeak``, math-verify and sympy
loaded), ``import torch`` (CPU build) at about 0.6 GiB, and every thread reserves its 8 MiB stack. glibc
gives each thread its own 64 MiB malloc arena as well, up to 8 per core, which would make the cap depend
on the machine's core count, so capped workers limit malloc to 2 arenas (Python allocates under the GIL,
so little speed is lost). The soft limit is a guard against runaway verifiers, not a security boundary: a
verifier can raise it, and its child processes (the code sandbox's programs) set their own.

Workers are started with the ``spawn`` method because the parent may hold Ray and other threads,
which a plain ``fork`` would copy mid-lock; as with any spawn user, a script that builds a pool must
guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import numbers
import os
import resource
import signal
import sys
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
from rlvr.verify.registry import VerifierInitError, load_verifier

__all__ = ["DEFAULT_WORKER_MEMORY_GIB", "VerifierPool", "VerifierPoolError", "VerifierSpec"]

DEFAULT_WORKER_MEMORY_GIB = 4.0
"""Address-space cap of a worker (GiB): some 20 times what a worker with the built-in verifiers uses."""

_M_ARENA_MAX = -8  # glibc's mallopt() parameter number for the arena count (malloc.h)


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
        worker_memory_gib: address-space cap of each worker (see the module docstring); None: no cap.
        log_path: file the workers' stdout and stderr are appended to (its directory is created);
            None: discarded.

    Verifiers are also built once in the parent, so a bad spec raises here, before any worker
    starts; a verifier with a ``check()`` method (a model judge probing its endpoint) has it called
    there too. Not re-entrant: concurrent ``score_batch`` calls are serialised by a lock.

    Raises:
        ValueError, ImportError, TypeError: a spec that names no verifier (as :func:`load_verifier`).
        VerifierInitError: a verifier's constructor or its ``check()`` raised; the message names it.
        VerifierPoolError: a worker could not start (the message names the verifier that failed there).
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
        worker_memory_gib: float | None = DEFAULT_WORKER_MEMORY_GIB,
        log_path: str | Path | None = None,
    ) -> None:
        if not verifiers:
            raise ValueError("VerifierPool needs at least one verifier")
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError(
                f"timeouts must be > 0, got timeout_s={timeout_s}, start_timeout_s={start_timeout_s}"
            )
        if worker_memory_gib is not None and not worker_memory_gib > 0:
            raise ValueError(f"worker_memory_gib must be > 0 or None, got {worker_memory_gib}")
        self._specs = {name: _as_spec(value) for name, value in verifiers.items()}
        self._base_dir = str(base_dir) if base_dir is not None else None
        self._batch_sizes: dict[str, int] = {}
        for name, vs in self._specs.items():
            built = load_verifier(vs.spec, vs.kwargs, self._base_dir)  # fail fast, with the real exception
            if callable(getattr(built, "check", None)):
                try:
                    built.check()  # e.g. a model judge: is the endpoint up, does it serve the model?
                except Exception as exc:
                    raise VerifierInitError(
                        f"verifier {vs.spec!r}: start-up check failed: {type(exc).__name__}: {exc}"
                    ) from exc
            self._batch_sizes[name] = _batch_size(name, built)
        self._timeouts = {name: vs.timeout_s or timeout_s for name, vs in self._specs.items()}
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._failure_score = failure_score
        self._health, self._health_interval_s, self._health_at = health, health_interval_s, 0.0
        self._memory_gib = worker_memory_gib
        self._log_path = str(log_path) if log_path is not None else None
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
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
        and ``details["reason"]`` set to "timeout", "crash" (details ``exitcode``, ``signal`` when one
        killed the worker, and ``message``, e.g. "worker killed by SIGSEGV"), "error: <type>: <msg>",
        "error: memory: ..." (the worker memory cap) or "error: invalid_result: <what>" (e.g. "score
        is nan"); they never raise. Every result's details carry ``verifier`` and ``elapsed_ms``
        (hand-off to answer; for a batched verifier, the time of its whole chunk).
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
            kind, payload, retire = worker.conn.recv()
        except (EOFError, OSError):
            # Its own exit status first (a dying worker closes its pipe after its exit code is set), then
            # the group kill: whatever it started must not outlive it.
            worker.process.join(timeout=2.0)
            death = _death(worker.process.exitcode)
            _kill(worker)
            if not worker.ready:
                raise VerifierPoolError(f"verifier worker: {death['message']} during start-up") from None
            if worker.task:
                self._fail(worker.task, results, "crash", **death)
            self._workers[slot] = self._spawn()
            return
        if kind == "ready":
            worker.ready = True
        elif kind == "failed":
            raise VerifierPoolError(f"verifier worker failed to start: {payload}")
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
            if retire:  # e.g. after a MemoryError: the worker's state is suspect, start a fresh one
                self._replace(slot)

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
            args=(child_conn, self._specs, self._base_dir, self._memory_gib, self._log_path),
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
    """SIGKILL the worker's process group (the worker and whatever it started) and reap the worker (no
    zombie); a worker stuck in a verifier gets no chance to clean up."""
    try:
        os.killpg(worker.process.pid, signal.SIGKILL)  # the group's id is the worker's pid (it calls setsid)
    except (ProcessLookupError, PermissionError):
        # No such group: the worker had not reached setsid yet (then it started nothing), or the group is
        # empty. The group id cannot have been reused while any member lives, so nothing else is hit.
        pass
    worker.process.kill()  # in case it had not reached setsid; a no-op for a reaped worker
    worker.process.join(timeout=5.0)
    worker.conn.close()


def _death(exitcode: int | None) -> dict[str, Any]:
    """A dead worker's ``exitcode`` (multiprocessing's: negative for a signal; None: still running after
    closing its pipe) as failure details, with a message that names the code or the signal."""
    if exitcode is None:
        return {"exitcode": None, "message": "worker closed its pipe without exiting (killed)"}
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return {"exitcode": exitcode, "signal": name, "message": f"worker killed by {name}"}
    return {"exitcode": exitcode, "message": f"worker died with exit code {exitcode}"}


# -- worker side ---------------------------------------------------------------------------------


def _worker_main(
    conn: Connection, specs: dict[str, VerifierSpec], base_dir: str | None, memory_gib: float | None,
    log_path: str | None,
) -> None:
    """Isolate and cap this process, build the verifiers, report ready (or which one failed, with the
    traceback), then score until the pipe closes. Every message is ``(kind, payload, retire)``; ``retire``
    asks the parent to replace this worker once it has taken the reply."""
    os.setsid()  # own session and process group: the pool kills the group, and no terminal signals reach us
    _detach_stdio(log_path)
    _cap_memory(memory_gib)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us
    _exit_with_parent(os.getppid())
    verifiers = {}
    for name, vs in specs.items():
        try:
            verifiers[name] = load_verifier(vs.spec, vs.kwargs, base_dir)
        except BaseException as exc:
            cause = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, MemoryError) and memory_gib is not None:
                cause += f" (under the {memory_gib:g} GiB worker memory cap: raise worker_memory_gib)"
            conn.send(("failed", f"verifier {vs.spec!r}: {cause}\n{traceback.format_exc()}", False))
            return
    conn.send(("ready", None, False))
    while True:
        try:
            name, samples = conn.recv()
        except EOFError:
            return
        kind, payload, retire = _score_task(verifiers[name], samples, memory_gib)
        try:
            conn.send((kind, payload, retire))
        except Exception as exc:  # unpicklable details: report it instead of dying as a "crash"
            conn.send(("error", f"error: {type(exc).__name__}: cannot send result: {exc}", retire))


def _detach_stdio(log_path: str | None) -> None:
    """stdin from /dev/null; stdout and stderr appended to ``log_path`` (or /dev/null), at the file
    descriptor level, so that processes a verifier starts inherit these and not the owner's pipes."""
    sys.stdout.flush()
    sys.stderr.flush()
    out = os.open(log_path or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {out, null} - {0, 1, 2}:
        os.close(fd)


def _cap_memory(memory_gib: float | None) -> None:
    """Lower the soft RLIMIT_AS to ``memory_gib`` (never above the hard limit, which stays as it is) and
    limit glibc to 2 malloc arenas, so that threads do not spend the cap on reserved arenas."""
    if memory_gib is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = int(memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl): no per-thread arenas to limit
        return
    mallopt(_M_ARENA_MAX, 2)


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
        os.killpg(os.getpgrp(), signal.SIGKILL)  # this worker's group: it and whatever it started
        os._exit(1)

    threading.Thread(target=watch, name="rlvr-verify-watchdog", daemon=True).start()


def _score_task(verifier: Any, samples: list[VerifySample], memory_gib: float | None) -> tuple[str, Any, bool]:
    """("ok", [(kind, result_or_reason) per sample], retire) or ("error", reason, retire) for the whole
    task; ``retire`` after a MemoryError."""
    if len(samples) == 1 or not scores_batches(verifier):
        items = [_score_one(verifier, s, memory_gib) for s in samples]
        return "ok", [item for item, _ in items], any(retire for _, retire in items)
    try:
        results = list(verifier.score_batch(samples))
    except BaseException as exc:
        return "error", _error(exc, memory_gib), isinstance(exc, MemoryError)
    if len(results) != len(samples):
        reason = f"error: ValueError: score_batch() returned {len(results)} results for {len(samples)} samples"
        return "error", reason, False
    return "ok", [_checked(r, "score_batch()") for r in results], False


def _score_one(verifier: Any, sample: VerifySample, memory_gib: float | None) -> tuple[tuple[str, Any], bool]:
    """((kind, result_or_reason), retire)."""
    try:
        result = verifier.score(sample)
    except BaseException as exc:  # SystemExit and math_verify's TimeoutException are BaseExceptions
        return ("error", _error(exc, memory_gib)), isinstance(exc, MemoryError)
    return _checked(result), False


def _error(exc: BaseException, memory_gib: float | None) -> str:
    if isinstance(exc, MemoryError) and memory_gib is not None:
        return f"error: memory: the verifier hit the {memory_gib:g} GiB worker memory cap (worker_memory_gib)"
    return f"error: {type(exc).__name__}: {exc}"


def _checked(result: Any, call: str = "score()") -> tuple[str, Any]:
    """("ok", result) with ``score`` a plain float and ``correct`` a plain bool, or ("error", reason): a
    NaN or a string passed on would poison the advantages of a whole batch, far from its cause."""
    if not isinstance(result, VerifyResult):
        return "error", f"error: TypeError: {call} returned {type(result).__name__}, expected VerifyResult"
    score, correct = result.score, result.correct
    # a bool score is more likely VerifyResult(correct, score) swapped than a reward meant as 0/1
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        return "error", f"error: invalid_result: score is {_kind(score)}, expected a real number"
    try:
        value = float(score)
    except (OverflowError, ValueError):
        return "error", f"error: invalid_result: score is {_kind(score)}, not representable as a float"
    if not math.isfinite(value):
        return "error", f"error: invalid_result: score is {value}"
    if not isinstance(correct, bool):
        if type(correct).__module__ != "numpy" or type(correct).__name__ not in ("bool", "bool_"):
            return "error", f"error: invalid_result: correct is {_kind(correct)}, expected bool"
    if not isinstance(result.details, dict):
        return "error", f"error: invalid_result: details is {_kind(result.details)}, expected dict"
    result.score, result.correct = value, bool(correct)
    return "ok", result


def _kind(value: Any) -> str:
    """``value``'s type and repr, cut to 40 characters, for a reason string."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


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
