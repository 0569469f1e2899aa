"""Where every worker of a run goes: a layout planned from the recipe, checked against the Ray cluster,
then reserved with placement groups before any worker starts.

Planning is pure (`plan_layout`, `check_fit`), so the arithmetic is unit-tested without a cluster.

* GPU, colocated: device r hosts learner rank r (its reference model lives in the same process), critic
  rank r and a slice of an engine; devices = max(ranks, engines x tensor_parallel_size), and vLLM sleeps
  while the learners train (the verl / OpenRLHF "hybrid engine" layout).
* GPU, split: learners (critic ranks share their devices) take the first devices, engines the next ones,
  each engine's group starting on a multiple of its tensor-parallel size.
* Devices are reserved node by node: one STRICT_PACK placement group per node of ``gpus_per_node``
  one-GPU bundles, so an engine's tensor-parallel group never spans nodes. A multi-GPU engine's actor
  holds a token GPU share on its first bundle (so it sees the device type it drives) and vLLM puts its
  tensor-parallel Ray workers on the engine's bundles (``VLLM_RAY_BUNDLE_INDICES``).
* CPU: one placement group, one bundle of ``cpus_per_worker`` CPUs per actor, packed (or spread when
  ``resources.nodes`` > 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rlvr.config.schema import RecipeConfig, ResourcesConfig

DRIVER_GPU = 0.01  # a multi-GPU engine's own actor: enough to be given the device, nothing to run on it


class ResourceError(RuntimeError):
    """The recipe's workers do not fit the Ray cluster (or could not be reserved in time)."""


@dataclass(frozen=True)
class Slot:
    """One actor's reservation: placement group ``group``, bundle ``bundle``."""

    group: int
    bundle: int
    num_cpus: float
    num_gpus: float
    tp_bundles: tuple[int, ...] = ()  # a multi-GPU engine: the bundles of its tensor-parallel workers
    tp_gpus: float = 0.0  # GPU share of each of those workers


@dataclass
class Layout:
    bundles: list[list[dict[str, float]]]  # per placement group
    strategy: str
    learners: list[Slot]
    critics: list[Slot]
    engines: list[Slot]
    gpus: int
    nodes: int
    summary: str = ""
    node_of_group: list[str] = field(default_factory=list)  # filled in by `Placement`


def gpus_per_node_of(res: ResourcesConfig, nodes: list[dict[str, Any]]) -> int:
    """``resources.gpus_per_node``, or the most GPUs any alive node of the cluster has."""
    if res.gpus_per_node is not None:
        return res.gpus_per_node
    return int(max((n["Resources"].get("GPU", 0) for n in nodes if n.get("Alive")), default=0))


def plan_layout(cfg: RecipeConfig, critic: bool, gpus_per_node: int) -> Layout:
    """The bundles and each actor's slot, from the recipe alone (``gpus_per_node`` 0: a CPU run)."""
    res, ranks, engines = cfg.resources, cfg.learner.num_ranks, cfg.rollout.num_engines
    tp, cpus = cfg.rollout.tensor_parallel_size, res.cpus_per_worker
    if gpus_per_node == 0:
        if tp > 1:
            raise ResourceError(f"rollout.tensor_parallel_size={tp} needs GPUs; this cluster has none")
        return _cpu_layout(ranks, engines, critic, cpus, res.nodes or 1)
    if gpus_per_node % tp:
        raise ResourceError(f"{gpus_per_node} GPUs per node is not a multiple of rollout.tensor_parallel_size"
                            f"={tp}: an engine cannot span nodes")
    learner_share = round(1.0 / ((2 if critic else 1) + (1 if res.colocate else 0)), 4)  # Ray's resolution
    if res.colocate:
        learner_dev = list(range(ranks))
        engine_dev = [list(range(i * tp, (i + 1) * tp)) for i in range(engines)]
        engine_share = learner_share
    else:
        first = math.ceil(ranks / tp) * tp  # engines start on a multiple of their size
        learner_dev = list(range(ranks))
        engine_dev = [list(range(first + i * tp, first + (i + 1) * tp)) for i in range(engines)]
        engine_share = 1.0
    used = sorted(set(learner_dev) | {d for devs in engine_dev for d in devs})
    groups: dict[int, list[int]] = {}
    for d in used:
        groups.setdefault(d // gpus_per_node, []).append(d)
    order = sorted(groups)
    where = {d: (order.index(d // gpus_per_node), groups[d // gpus_per_node].index(d)) for d in used}
    bundles = [[{"GPU": 1.0} for _ in groups[g]] for g in order]

    def reserve(d: int, n_cpus: float) -> None:
        g, b = where[d]
        bundles[g][b]["CPU"] = bundles[g][b].get("CPU", 0.0) + n_cpus

    learners, critics, engine_slots = [], [], []
    for d in learner_dev:
        reserve(d, cpus * (2 if critic else 1))
        learners.append(Slot(*where[d], cpus, learner_share))
        if critic:
            critics.append(Slot(*where[d], cpus, learner_share))
    for devs in engine_dev:
        reserve(devs[0], cpus)
        g, b = where[devs[0]]
        if tp == 1:
            engine_slots.append(Slot(g, b, cpus, engine_share))
        else:
            engine_slots.append(Slot(g, b, cpus, DRIVER_GPU, tuple(where[d][1] for d in devs),
                                     round(engine_share - DRIVER_GPU, 4)))
    mode = "colocated" if res.colocate else "split"
    summary = (f"{len(used)} GPU(s) on {len(order)} node(s), {mode}: {ranks} learner rank(s)"
               f"{' + critic' if critic else ''} on GPU {learner_dev[0]}..{learner_dev[-1]}, {engines} engine(s) "
               f"x TP {tp} on GPU {engine_dev[0][0]}..{engine_dev[-1][-1]}")
    return Layout(bundles, "STRICT_PACK", learners, critics, engine_slots, len(used), len(order), summary)


def _cpu_layout(ranks: int, engines: int, critic: bool, cpus: float, nodes: int) -> Layout:
    n_critic = ranks if critic else 0
    count = ranks + n_critic + engines
    slots = [Slot(0, i, cpus, 0.0) for i in range(count)]
    summary = (f"CPU: {count} actor(s) x {cpus:g} CPU ({ranks} learner rank(s)"
               f"{f', {n_critic} critic rank(s)' if critic else ''}, {engines} engine(s))"
               f"{f' spread over {nodes} nodes' if nodes > 1 else ''}")
    return Layout([[{"CPU": cpus} for _ in range(count)]], "SPREAD" if nodes > 1 else "PACK",
                  slots[:ranks], slots[ranks:ranks + n_critic], slots[ranks + n_critic:], 0, nodes, summary)


def check_fit(layout: Layout, res: ResourcesConfig, nodes: list[dict[str, Any]],
              extra_cpus: float = 0.0, extra_gpus: float = 0.0) -> None:
    """Raise `ResourceError` naming the shortfall when ``layout`` (plus ``extra`` for the judge server)
    cannot fit the alive ``nodes`` (``ray.nodes()`` entries) even with the whole cluster free."""
    alive = [n for n in nodes if n.get("Alive")]
    have = "; ".join(f"{n.get('NodeManagerAddress', '?')}/{str(n.get('NodeID', ''))[:8]}: "
                     f"{n['Resources'].get('CPU', 0):g} CPU, {n['Resources'].get('GPU', 0):g} GPU"
                     for n in alive) or "none"
    where = f"the Ray cluster has {len(alive)} alive node(s) ({have})"
    if res.nodes is not None and len(alive) < res.nodes:
        raise ResourceError(f"resources.nodes={res.nodes}, but {where}")
    if res.nodes is not None and layout.nodes > res.nodes:
        raise ResourceError(f"the run needs {layout.gpus} GPUs on {layout.nodes} node(s) ({layout.summary}), "
                            f"more than resources.nodes={res.nodes}")
    total_cpu = sum(n["Resources"].get("CPU", 0) for n in alive)
    total_gpu = sum(n["Resources"].get("GPU", 0) for n in alive)
    cpu_need = sum(b.get("CPU", 0) for g in layout.bundles for b in g) + extra_cpus
    if cpu_need > total_cpu:
        raise ResourceError(f"the run needs {cpu_need:g} CPUs ({layout.summary}"
                            f"{f', judge server {extra_cpus:g}' if extra_cpus else ''}), but {where}")
    if layout.gpus + extra_gpus > total_gpu:
        raise ResourceError(f"the run needs {layout.gpus + extra_gpus:g} GPUs ({layout.summary}"
                            f"{f', judge server {extra_gpus:g}' if extra_gpus else ''}), but {where}")
    if layout.strategy == "STRICT_PACK":  # each group needs a node of its own with room for all its bundles
        free = sorted(((n["Resources"].get("GPU", 0), n["Resources"].get("CPU", 0)) for n in alive), reverse=True)
        for group in sorted(layout.bundles, key=len, reverse=True):
            need_gpu, need_cpu = len(group), sum(b.get("CPU", 0) for b in group)
            fit = next((i for i, (g, c) in enumerate(free) if g >= need_gpu and c >= need_cpu), None)
            if fit is None:
                raise ResourceError(f"the run needs {layout.nodes} node(s) with {len(layout.bundles[0])} GPUs "
                                    f"and {need_cpu:g} CPUs each ({layout.summary}), but {where}")
            free.pop(fit)


class Placement:
    """The reserved placement groups of a run; `options` turns a `Slot` into Ray actor options."""

    def __init__(self, layout: Layout, groups: list[Any]) -> None:
        self.layout, self.groups = layout, groups

    @classmethod
    def reserve(cls, cfg: RecipeConfig, critic: bool, timeout_s: float, extra_cpus: float = 0.0,
                extra_gpus: float = 0.0) -> Placement:
        """Plan, check against the cluster, create the placement groups and wait for them (deadline)."""
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        nodes = ray.nodes()
        layout = plan_layout(cfg, critic, gpus_per_node_of(cfg.resources, nodes))
        check_fit(layout, cfg.resources, nodes, extra_cpus, extra_gpus)
        groups = [placement_group(b, strategy=layout.strategy) for b in layout.bundles]
        ready, _ = ray.wait([g.ready() for g in groups], num_returns=len(groups), timeout=timeout_s)
        if len(ready) < len(groups):
            for g in groups:
                remove_placement_group(g)
            raise ResourceError(
                f"could not reserve {layout.summary} within {timeout_s:.0f} s: the cluster is big enough "
                f"but not free (other jobs or actors hold resources; `ray status` shows them)")
        return cls(layout, groups)

    def options(self, slot: Slot) -> dict[str, Any]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        opts: dict[str, Any] = {
            "num_cpus": slot.num_cpus, "num_gpus": slot.num_gpus,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                self.groups[slot.group], placement_group_bundle_index=slot.bundle,
                placement_group_capture_child_tasks=bool(slot.tp_bundles)),
        }
        if slot.tp_bundles:  # vLLM's Ray executor places its tensor-parallel workers on these bundles
            opts["runtime_env"] = {"env_vars": {"VLLM_RAY_BUNDLE_INDICES": ",".join(map(str, slot.tp_bundles)),
                                                "VLLM_RAY_PER_WORKER_GPUS": str(slot.tp_gpus)}}
        return opts

    def free_port_at(self, slot: Slot) -> tuple[str, int]:
        """(ip, free port) on the node of ``slot``: where learner rank 0 hosts its process-group store."""
        import ray

        from rlvr.remote import wait

        @ray.remote(num_cpus=0)
        def probe() -> tuple[str, int]:
            from rlvr.remote import free_port

            return ray.util.get_node_ip_address(), free_port()

        return wait(probe.options(**{**self.options(slot), "num_cpus": 0, "num_gpus": 0}).remote(), 120.0,
                    "probe for a free port on learner rank 0's node")

    def remove(self) -> None:
        from ray.util.placement_group import remove_placement_group

        for g in self.groups:
            try:
                remove_placement_group(g)
            except Exception:  # Ray already shut down: nothing left to release
                pass
