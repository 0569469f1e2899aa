"""Disjoint CPU cores for the rollout engines and the learners of an asynchronous CPU run.

In the synchronous loop an engine and a learner take turns, so each may use every core. With
``rollout.max_staleness`` >= 1 they work at the same time, and two thread pools spread over the same
cores slow each other down (measured on the tiny model: neither phase gains much from a second core,
ENVIRONMENT.md). Each actor pins itself when it starts: engines to the first half of its node's
usable cores, learners (and critic ranks) to the rest.
"""

from __future__ import annotations

import os
from typing import Literal

Role = Literal["engines", "learners"]


def wants_pinning(pin_cpus: str, max_staleness: int) -> bool:
    """``resources.pin_cpus`` resolved: ``on``, or ``auto`` in an asynchronous run."""
    return pin_cpus == "on" or (pin_cpus == "auto" and max_staleness > 0)


def cores_for(role: Role, cores: list[int]) -> list[int]:
    """This role's share of ``cores`` (sorted): engines the first half, learners the rest; one core is
    shared by both."""
    cores = sorted(cores)
    if len(cores) < 2:
        return cores
    half = len(cores) // 2
    return cores[:half] if role == "engines" else cores[half:]


def pin_process(role: Role) -> list[int]:
    """Pin every thread of this process (and those it starts later) to ``role``'s cores; those cores."""
    mine = cores_for(role, sorted(os.sched_getaffinity(0)))
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), mine)
        except OSError:  # a thread that just exited
            pass
    os.sched_setaffinity(0, mine)
    return mine
