"""Preemption: SIGTERM and SIGUSR1 (Slurm's warning before it kills a job) end a run through its normal
tear-down instead of killing the driver outright, and ``rlvr train`` exits `EXIT_PREEMPTED`, which a
batch script can requeue on. `ray.init` installs its own SIGTERM handler, so `rearm` puts ours back."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_active = False


class Preempted(BaseException):
    """Raised in the driver by SIGTERM or SIGUSR1; a BaseException so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, _frame: Any) -> None:
    for sig in SIGNALS:  # a second signal must not cut the tear-down short
        signal.signal(sig, signal.SIG_IGN)
    raise Preempted(signum)


def rearm() -> None:
    """Re-install the handlers inside `preemptible` (after a library replaced them); otherwise nothing."""
    if _active and threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _stop)


@contextmanager
def preemptible() -> Iterator[None]:
    """While inside, SIGTERM / SIGUSR1 raise `Preempted` in the main thread."""
    global _active
    old = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _active = True
    rearm()
    try:
        yield
    finally:
        _active = False
        for sig, handler in old.items():
            signal.signal(sig, handler)
