"""Load balancing over rollout engines: prompts go out in chunks to whichever engine is free, results come
back in prompt order, and each prompt's seed does not depend on the engine that took it. Fake engines
(real Ray actors in the run's placement group, no vLLM) make one engine slow."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from rlvr.config import load_recipe
from rlvr.placement import Placement
from rlvr.rollout.group import RolloutGroup
from tests.conftest import DEFAULT_RECIPE


class _FakeEngine:
    def __init__(self, model: str, dtype: str, seed: int, *_: Any, **__: Any) -> None:
        self.index = seed  # the group passes run.seed + engine index

    def generate(self, prompts: list[list[int]], n: int, temperature: float, top_p: float, max_tokens: int,
                 seed: int | None, greedy: bool = False) -> list[list[dict[str, Any]]]:
        time.sleep(0.5 * len(prompts) if self.index == 0 else 0.01)  # engine 0 is 50x slower
        return [[{"engine": self.index, "prompt": p[0], "seed": seed + k * n + j} for j in range(n)]
                for k, p in enumerate(prompts)]


@pytest.fixture(scope="module")
def group() -> Iterator[RolloutGroup]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    # 2 engines + the learner's slot
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    cfg = load_recipe(DEFAULT_RECIPE, ["rollout.num_engines=2", "rollout.chunks_per_engine=4", "run.seed=0"])
    placement = Placement.reserve(cfg, critic=False, timeout_s=60)
    yield RolloutGroup(cfg, 64, timeout_s=60, placement=placement, worker_cls=_FakeEngine)  # type: ignore[arg-type]
    ray.shutdown()


def test_free_engines_take_more_chunks_and_order_is_kept(group: RolloutGroup) -> None:
    prompts = [[i] for i in range(16)]
    groups = group.generate(prompts, n=2, temperature=1.0, top_p=1.0, max_tokens=4, seed=100)
    assert [g[0]["prompt"] for g in groups] == list(range(16))  # prompt order
    # prompt i's samples use seeds 100 + 2i, 100 + 2i + 1 whichever engine ran it
    assert [s["seed"] for g in groups for s in g] == list(range(100, 132))
    per_engine = [sum(g[0]["engine"] == e for g in groups) for e in (0, 1)]
    assert per_engine[1] > per_engine[0] >= 2  # the slow engine did one chunk of 2 prompts, the fast one the rest


def test_chunks_stream_in_finishing_order(group: RolloutGroup) -> None:
    starts = [start for start, _ in group.generate_shards([[i] for i in range(16)], 1, 1.0, 1.0, 4, seed=0)]
    assert sorted(starts) == list(range(0, 16, 2)) and starts[-1] == 0  # the slow engine's chunk comes last
