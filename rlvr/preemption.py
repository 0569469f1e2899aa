"""Preemption: SIGTERM and SIGUSR1 (Slurm's warning before it kills a job) end a run cleanly, and
``rlvr train`` exits `EXIT_PREEMPTED`, which a batch script can requeue on.

Inside the training loop (`deferred`) the first signal only records a request: the loop finishes the
step it is in, writes a checkpoint and then raises `Preempted`, so the requeued job resumes where this
one stopped. A second signal (more than `SAME_REQUEST_S` later: a cancelled Slurm job gets SIGTERM from
Slurm and from its batch script at once), or one that arrives outside the loop (start-up), raises
`Preempted` at once and the run goes through its normal tear-down.
`ray.init` installs its own SIGTERM handler, so `rearm` puts ours back.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
SAME_REQUEST_S = 2.0  # Slurm signals the job's processes and the batch script forwards: one request, two signals
_active = False
_deferred = False
_requested: int | None = None
_requested_at = 0.0


class Preempted(BaseException):
    """Raised in the driver by SIGTERM or SIGUSR1; a BaseException so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, _frame: Any) -> None:
    global _requested, _requested_at
    if _deferred and _requested is None:
        _requested, _requested_at = signum, time.monotonic()
        print(f"{signal.Signals(signum).name}: stopping after this step with a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)
        return
    if _deferred and time.monotonic() - _requested_at < SAME_REQUEST_S:
        return  # the same request delivered twice (by Slurm and by the batch script), not a second one
    for sig in SIGNALS:  # the tear-down must not be cut short by a further signal
        signal.signal(sig, signal.SIG_IGN)
    raise Preempted(signum)


def requested() -> int | None:
    """The signal that asked the loop to stop at its next safe point, if any."""
    return _requested


def rearm() -> None:
    """Re-install the handlers inside `preemptible` (after a library replaced them); otherwise nothing."""
    if _active and threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _on_signal)


@contextmanager
def preemptible() -> Iterator[None]:
    """While inside, SIGTERM / SIGUSR1 raise `Preempted` in the main thread (or, in `deferred`, request a stop)."""
    global _active, _requested
    old = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _active, _requested = True, None
    rearm()
    try:
        yield
    finally:
        _active, _requested = False, None  # a request belongs to this run: a later one in the process starts clean
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """The training loop: a first signal is recorded (`requested`) instead of raised."""
    global _deferred
    _deferred = True
    try:
        yield
    finally:
        _deferred = False
