"""The half of a run that does not hold its policy: Ray, the reservation of every worker's place, the
model judge's server, the verifier pool and the rollout engines.

A `rlvr.session.Session` starts its own and stops it with the run. Several sessions may also use one
`Engines`, one after another, when their recipes need the same engines (`Engines.mismatch` names what
differs): each session brings its own learners and pushes their weights into the engines before its first
rollout, so a shared engine starts every run from that run's policy, exactly as a resumed run starts from
its checkpoint. The test suite trains every loss module that way without an engine start per run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlvr.config import RecipeConfig
from rlvr.lifecycle import Started

if TYPE_CHECKING:
    from rlvr.verify import VerifierPool

ENGINE_FIELDS = (
    "model", "rollout.num_engines", "rollout.tensor_parallel_size", "rollout.kv_cache_gib",
    "rollout.gpu_memory_utilization", "rollout.vllm", "rollout.weight_transfer", "rollout.sleep",
    "learner.num_ranks", "reward", "resources", "ray",
)
"""Recipe fields the engines, the verifier pool or the placement were built from. Sampling settings
(temperature, n, max_new_tokens, ...) travel with each call, so runs may differ in those, and in
``run.seed``: every sampled request carries its own seed (evaluation without one is greedy), so the
engines' own seed never decides what they sample."""


def max_model_len(cfg: RecipeConfig) -> int:
    """The longest sequence an engine must hold: prompt budget plus the longer of the rollout and eval budgets."""
    return cfg.data.max_prompt_tokens + max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)


def _field(cfg: RecipeConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.model_dump() if hasattr(value, "model_dump") else value


class Engines(Started):
    """Ray, placement, judge server, verifier pool and rollout engines for ``cfg`` (``critic``: reserve
    the PPO critic's places too; ``log_dir``: the judge server's log). A context manager: everything it
    started stops on exit, in reverse."""

    def __init__(self, cfg: RecipeConfig, critic: bool, row_verifiers: Iterable[str | None],
                 log: Callable[[str], None], log_dir: Path) -> None:
        self.cfg, self.critic, self.log, self.log_dir = cfg, critic, log, log_dir
        self.row_verifiers = {v for v in row_verifiers if v is not None}
        self.max_len = max_model_len(cfg)
        self.placed: list[dict[str, Any]] = []
        self.startup: dict[str, float] = {}  # seconds per start-up phase (`rlvr.session` prints them)
        super().__init__()

    def _timed(self, phase: str, t0: float) -> float:
        """Add the time since ``t0`` to ``phase``; now."""
        now = time.perf_counter()
        self.startup[phase] = self.startup.get(phase, 0.0) + now - t0
        return now

    def _start(self) -> None:
        """Start everything; the engines load in the background until `wait_ready` (learners start meanwhile)."""
        import ray

        from rlvr.placement import Placement
        from rlvr.remote import init_ray
        from rlvr.rollout.group import RolloutGroup

        cfg, t = self.cfg, time.perf_counter()
        critic_ranks = cfg.learner.num_ranks if self.critic else 0
        js = cfg.reward.judge_server
        if js is None:  # the pool needs nothing from Ray: a verifier that cannot be built fails before Ray starts
            self.verify = self._verifier_pool()
            t = self._timed("verifier pool", t)
        actors = cfg.rollout.num_engines + cfg.learner.num_ranks + critic_ranks
        how = init_ray(cfg.ray.address, cfg.ray.num_cpus,
                       math.ceil(actors * cfg.resources.cpus_per_worker + (js.num_cpus if js else 0)),
                       cfg.logging.verbose)
        self._stack.callback(ray.shutdown)
        self.placement = Placement.reserve(cfg, self.critic, cfg.ray.startup_timeout_s,
                                           extra_cpus=js.num_cpus if js else 0.0,
                                           extra_gpus=js.num_gpus if js else 0.0)
        self._stack.callback(self.placement.remove)
        t = self._timed("ray", t)
        self.log(f"placement: {self.placement.layout.summary}; Ray: {how}")
        if js is not None:
            self.verify = self._verifier_pool(*self._start_judge_server())
            t = self._timed("judge server", t)
        self.rollouts = RolloutGroup(cfg, self.max_len, timeout_s=cfg.ray.startup_timeout_s,
                                     placement=self.placement, log_dir=str(self.log_dir))
        self._stack.callback(self.rollouts.shutdown)
        self._timed("engine spawn", t)

    def wait_ready(self) -> list[dict[str, Any]]:
        """Wait for the engines to load (once); where each runs. Later calls keep the call deadline."""
        if not self.placed:
            t = time.perf_counter()
            self.placed = self.rollouts.wait_ready()
            self._timed("engines (after the learners)", t)
            self.rollouts.timeout_s = self.cfg.ray.call_timeout_s
        return self.placed

    def mismatch(self, cfg: RecipeConfig, critic: bool, row_verifiers: Iterable[str | None]) -> list[str]:
        """Why a run of ``cfg`` cannot use these engines (empty: it can)."""
        why = [f"{name} differs" for name in ENGINE_FIELDS if _field(cfg, name) != _field(self.cfg, name)]
        if critic and not self.critic:
            why.append("the run needs a critic and no place was reserved for one")
        if max_model_len(cfg) > self.max_len:
            why.append(f"its sequences ({max_model_len(cfg)} tokens) are longer than the engines hold ({self.max_len})")
        missing = {v for v in row_verifiers if v is not None} - self.row_verifiers
        if missing:
            why.append(f"its rows ask for verifiers the pool does not have: {', '.join(sorted(missing))}")
        return why

    def _verifier_pool(self, judge_url: str | None = None, judge_model: str | None = None) -> VerifierPool:
        """The run's `rlvr.verify.VerifierPool` (its workers log to ``log_dir/verifiers.log``), stopped with the
        engines; with a judge server's URL and served name, probing that server while it scores."""
        from rlvr.verify import VerifierPool
        from rlvr.verify.specs import build_specs

        reward = self.cfg.reward
        return self._stack.enter_context(VerifierPool(
            build_specs(reward, self.row_verifiers, judge_url, judge_model), num_workers=reward.num_workers,
            timeout_s=reward.timeout_s, failure_score=reward.failure_score, worker_memory_gib=reward.worker_memory_gib,
            health=self._judge_health if judge_url is not None else None, log_path=self.log_dir / "verifiers.log",
        ))

    def _judge_health(self) -> None:
        """The verifier pool's probe while it scores: a dead judge server (actor or vLLM process) raises."""
        from rlvr.verify.judge_server import check_judge_server

        check_judge_server(self._judge)

    def _start_judge_server(self) -> tuple[str, str]:
        """Start the model judge's own vLLM server (its own Ray actor and resources); its URL and served name."""
        from rlvr.remote import wait
        from rlvr.verify.judge_server import launch_judge_server, shutdown_judge_server

        js = self.cfg.reward.judge_server
        assert js is not None
        handle, url = launch_judge_server(
            js.model, num_cpus=js.num_cpus, num_gpus=js.num_gpus, vllm_args=js.vllm_args, env=js.env,
            ready_timeout_s=js.ready_timeout_s, log_dir=str(self.log_dir),
        )
        self._stack.callback(shutdown_judge_server, handle)
        self._judge = handle
        served = wait(handle.info.remote(), 60.0, "judge server info")["model"]
        self.log(f"judge server {served} at {url}")
        return url, served
