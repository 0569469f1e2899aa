"""Layout arithmetic and the fit check against a cluster, without Ray: which device each role gets, how
many nodes a recipe needs, and the message when it does not fit."""

from __future__ import annotations

from typing import Any

import pytest

from rlvr.config import RecipeError, load_recipe
from rlvr.placement import DRIVER_GPU, ResourceError, check_fit, gpus_per_node_of, plan_layout
from tests.conftest import DEFAULT_RECIPE


def _cfg(*overrides: str):
    return load_recipe(DEFAULT_RECIPE, list(overrides))


def _node(cpu: float, gpu: float = 0, alive: bool = True, ip: str = "10.0.0.1") -> dict[str, Any]:
    return {"Alive": alive, "NodeManagerAddress": ip, "NodeID": "ab" * 14, "Resources": {"CPU": cpu, "GPU": gpu}}


def _devices(layout, slots) -> list[int]:
    """Global device index of each slot (placement groups are nodes of equal size, in order)."""
    size = len(layout.bundles[0])
    return [s.group * size + s.bundle for s in slots]


def test_cpu_layout_one_bundle_per_actor() -> None:
    cfg = _cfg("rollout.num_engines=2", "learner.num_ranks=2")
    layout = plan_layout(cfg, critic=True, gpus_per_node=0)
    assert layout.strategy == "PACK" and layout.gpus == 0
    assert layout.bundles == [[{"CPU": 1.0}] * 6]
    bundles = [s.bundle for s in layout.learners + layout.critics + layout.engines]
    assert sorted(bundles) == list(range(6))  # every actor its own bundle
    assert all(s.num_gpus == 0 for s in layout.learners + layout.engines)
    assert plan_layout(_cfg("resources.nodes=2"), critic=False, gpus_per_node=0).strategy == "SPREAD"


def test_colocated_gpu_layout_shares_each_device() -> None:
    cfg = _cfg("rollout.num_engines=8", "learner.num_ranks=8", "rollout.prompts_per_step=8")
    layout = plan_layout(cfg, critic=False, gpus_per_node=8)
    assert layout.gpus == 8 and layout.nodes == 1 and layout.strategy == "STRICT_PACK"
    assert _devices(layout, layout.learners) == list(range(8)) == _devices(layout, layout.engines)
    assert all(s.num_gpus == 0.5 for s in layout.learners + layout.engines)
    assert layout.bundles[0][3] == {"GPU": 1.0, "CPU": 2.0}  # learner + engine CPUs on the device's bundle


def test_colocated_with_critic_takes_thirds() -> None:
    cfg = _cfg("rollout.num_engines=2", "learner.num_ranks=2")
    layout = plan_layout(cfg, critic=True, gpus_per_node=2)
    shares = {s.num_gpus for s in layout.learners + layout.critics + layout.engines}
    assert shares == {0.3333}  # three roles per device, at Ray's 1e-4 resolution
    assert _devices(layout, layout.critics) == [0, 1]


def test_tensor_parallel_engines_stay_on_one_node() -> None:
    cfg = _cfg("rollout.num_engines=4", "rollout.tensor_parallel_size=4", "learner.num_ranks=16",
               "rollout.prompts_per_step=16")
    layout = plan_layout(cfg, critic=False, gpus_per_node=8)
    assert layout.gpus == 16 and layout.nodes == 2 and [len(g) for g in layout.bundles] == [8, 8]
    for i, engine in enumerate(layout.engines):
        assert engine.tp_bundles == tuple(range((i % 2) * 4, (i % 2) * 4 + 4))  # inside one node's group
        assert engine.group == i // 2
        assert engine.num_gpus == DRIVER_GPU
        assert engine.num_gpus + engine.tp_gpus + layout.learners[0].num_gpus <= 1.0  # fits a device
    with pytest.raises(ResourceError, match="cannot span nodes"):
        plan_layout(cfg, critic=False, gpus_per_node=6)


def test_split_layout_gives_engines_their_own_devices() -> None:
    cfg = _cfg("resources.colocate=false", "rollout.num_engines=3", "rollout.tensor_parallel_size=2",
               "learner.num_ranks=3", "rollout.prompts_per_step=6", "rollout.n=2")
    layout = plan_layout(cfg, critic=False, gpus_per_node=8)
    assert _devices(layout, layout.learners) == [0, 1, 2]
    # engines start on a multiple of their size (device 4), so none straddles a node boundary
    assert [(e.group, e.tp_bundles) for e in layout.engines] == [(0, (3, 4)), (0, (5, 6)), (1, (0, 1))]
    assert layout.gpus == 9 and layout.nodes == 2
    assert all(s.num_gpus == 1.0 for s in layout.learners)
    assert "split" in layout.summary


def test_fit_check_names_the_shortfall() -> None:
    cfg = _cfg("rollout.num_engines=8", "learner.num_ranks=8", "rollout.prompts_per_step=8")
    layout = plan_layout(cfg, critic=False, gpus_per_node=8)
    check_fit(layout, cfg.resources, [_node(64, 8)])
    shortfall = r"needs 8 GPUs .* has 1 alive node\(s\) \(10.0.0.1/abababab: 64 CPU, 4 GPU\)"
    with pytest.raises(ResourceError, match=shortfall):
        check_fit(layout, cfg.resources, [_node(64, 4)])
    with pytest.raises(ResourceError, match="1 node"):  # 8 GPUs in all, but not on one node
        check_fit(layout, cfg.resources, [_node(64, 4), _node(64, 4, ip="10.0.0.2")])
    with pytest.raises(ResourceError, match="needs 16 CPUs"):
        check_fit(layout, cfg.resources, [_node(8, 8)])
    with pytest.raises(ResourceError, match="judge server 1"):
        check_fit(layout, cfg.resources, [_node(64, 8)], extra_gpus=1)
    dead = [_node(64, 8), _node(64, 8, alive=False)]
    with pytest.raises(ResourceError, match=r"resources.nodes=2, but the Ray cluster has 1 alive"):
        check_fit(layout, _cfg("resources.nodes=2").resources, dead)


def test_fit_check_against_declared_nodes() -> None:
    cfg = _cfg("rollout.num_engines=16", "learner.num_ranks=16", "rollout.prompts_per_step=16", "resources.nodes=1")
    layout = plan_layout(cfg, critic=False, gpus_per_node=8)
    with pytest.raises(ResourceError, match="more than resources.nodes=1"):
        check_fit(layout, cfg.resources, [_node(64, 8), _node(64, 8, ip="10.0.0.2")])


def test_gpus_per_node_defaults_to_the_cluster() -> None:
    res = _cfg().resources
    assert gpus_per_node_of(res, [_node(4), _node(4, 8), _node(4, 16, alive=False)]) == 8
    assert gpus_per_node_of(res, [_node(4)]) == 0
    assert gpus_per_node_of(_cfg("resources.gpus_per_node=4").resources, [_node(4, 8)]) == 4


def test_cpu_cluster_rejects_tensor_parallelism() -> None:
    with pytest.raises(ResourceError, match="needs GPUs"):
        plan_layout(_cfg("rollout.tensor_parallel_size=2"), critic=False, gpus_per_node=0)


@pytest.mark.parametrize("override, message", [
    ("rollout.vllm={tensor_parallel_size: 2}", "set rollout.tensor_parallel_size instead"),
    ("resources.gpus_per_node=0", None),
])
def test_recipe_level_checks(override: str, message: str | None) -> None:
    if message is None:
        _cfg(override)
        with pytest.raises(RecipeError, match="needs GPUs"):
            _cfg(override, "rollout.tensor_parallel_size=2")
    else:
        with pytest.raises(RecipeError, match=message):
            _cfg(override)
    with pytest.raises(RecipeError, match="not a multiple"):
        _cfg("resources.gpus_per_node=6", "rollout.tensor_parallel_size=4")


def test_validate_plan_prints_each_recipes_layout(capsys: pytest.CaptureFixture[str]) -> None:
    from rlvr.cli import main
    from tests.conftest import ROOT

    assert main(["validate", "--plan", str(ROOT / "recipes" / "dapo_qwen2.5_32b.yaml"), str(DEFAULT_RECIPE)]) == 0
    out = capsys.readouterr().out
    assert "128 GPU(s) on 16 node(s), colocated: 128 learner rank(s) on GPU 0..127, 32 engine(s) x TP 4" in out
    assert "CPU: 2 actor(s) x 1 CPU (1 learner rank(s), 1 engine(s))" in out
