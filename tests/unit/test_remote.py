"""Failure reports from `rlvr.remote.wait`: the actor's role, node, pid and state, and its log's tail."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import ray

from rlvr.remote import WorkerError, track, wait


@ray.remote(num_cpus=0)
class _Worker:
    def ping(self) -> int:
        return os.getpid()

    def hang(self) -> None:
        time.sleep(600)

    def die(self) -> None:
        import sys

        print("loading shard 3 of 4 failed: out of memory", file=sys.stderr, flush=True)
        os._exit(7)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_timeout_names_the_actors_that_did_not_answer(local_ray: None) -> None:
    fast, slow = _Worker.remote(), _Worker.remote()
    track(fast, "rollout engine 0")
    track(slow, "rollout engine 1")
    pid = wait(slow.ping.remote(), 60, "warm-up")
    start = time.monotonic()
    with pytest.raises(WorkerError) as err:
        wait([fast.ping.remote(), slow.hang.remote()], 1.0, "rollout generate")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert message.startswith("rollout generate: no answer within 1 s from rollout engine 1 (node ")
    assert f"pid {pid}, state ALIVE" in message and "rollout engine 0" not in message


def test_death_names_the_actor_and_shows_its_log(local_ray: None) -> None:
    worker = _Worker.remote()
    track(worker, "policy learner rank 3")
    pid = wait(worker.ping.remote(), 60, "warm-up")
    with pytest.raises(WorkerError) as err:
        wait(worker.die.remote(), 60, "learner train_step")
    message = str(err.value)
    assert message.startswith("learner train_step: policy learner rank 3 (node ") and f"pid {pid}" in message
    assert " died. " in message and "last lines of the log of policy learner rank 3" in message
    assert "loading shard 3 of 4 failed: out of memory" in message
