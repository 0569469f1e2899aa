"""Everything a run holds open: run directory and log, data, Ray, verifier workers, rollout
engines, learners and the weight sync; started in order, torn down in reverse (also on error)."""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rlvr.config import RecipeConfig
from rlvr.data.dataset import PromptRow, PromptSampler, build_rows
from rlvr.tracking import RunLog, create_run_dir


class Session:
    def __init__(self, cfg: RecipeConfig) -> None:
        self.cfg = cfg
        self._stack = ExitStack()

    def __enter__(self) -> Session:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _start(self) -> None:
        import ray
        from transformers import AutoConfig, AutoTokenizer

        from rlvr.algorithms import get_algorithm
        from rlvr.learner.group import LearnerGroup
        from rlvr.placement import Placement
        from rlvr.remote import init_ray
        from rlvr.rollout.group import RolloutGroup
        from rlvr.verify import VerifierPool
        from rlvr.verify.specs import build_specs, verifier_checker
        from rlvr.weight_sync import WeightSync

        cfg, t0 = self.cfg, time.perf_counter()
        self.run_dir: Path = create_run_dir(cfg)
        self.log = RunLog(self.run_dir, cfg.run.steps)
        self._stack.callback(self.log.close)
        self.log.info(f"run directory: {self.run_dir}")

        tokenizer = AutoTokenizer.from_pretrained(cfg.model.source, revision=cfg.model.revision)
        check = verifier_checker(cfg.reward)
        train_rows: list[PromptRow] = []
        self.eval_sets = {}
        for split, sources in (("train", cfg.data.train), ("eval", cfg.eval.data)):
            for src in sources:
                rows, report = build_rows(src, cfg.data, tokenizer, check)
                self.log.info(f"{split} data {src.label}: {report.describe()}")
                if split == "train":
                    train_rows += rows
                else:
                    self.eval_sets[src.label] = rows
        self.prompts = PromptSampler(train_rows, cfg.data.shuffle, cfg.run.seed)
        self.algorithm = get_algorithm(cfg.algorithm, max_new_tokens=cfg.rollout.max_new_tokens)

        critic_ranks = cfg.learner.num_ranks if self.algorithm.needs_critic else 0
        js = cfg.reward.judge_server
        actors = cfg.rollout.num_engines + cfg.learner.num_ranks + critic_ranks
        init_ray(cfg.ray.address, cfg.ray.num_cpus,
                 math.ceil(actors * cfg.resources.cpus_per_worker + (js.num_cpus if js else 0)))
        self._stack.callback(ray.shutdown)
        placement = Placement.reserve(cfg, self.algorithm.needs_critic, cfg.ray.startup_timeout_s,
                                      extra_cpus=js.num_cpus if js else 0.0, extra_gpus=js.num_gpus if js else 0.0)
        self._stack.callback(placement.remove)
        self.log.info(f"placement: {placement.layout.summary}")
        judge_url, judge_model = self._start_judge_server() if cfg.reward.judge_server else (None, None)
        row_verifiers = [row.verifier for rows in [train_rows, *self.eval_sets.values()] for row in rows]
        self.verify = self._stack.enter_context(VerifierPool(
            build_specs(cfg.reward, row_verifiers, judge_url, judge_model), num_workers=cfg.reward.num_workers,
            timeout_s=cfg.reward.timeout_s, failure_score=cfg.reward.failure_score,
        ))
        max_len = cfg.data.max_prompt_tokens + max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)
        tied = bool(getattr(AutoConfig.from_pretrained(cfg.model.source, revision=cfg.model.revision),
                            "tie_word_embeddings", False))
        self.learners = LearnerGroup(cfg, timeout_s=cfg.ray.startup_timeout_s, placement=placement)
        self._stack.callback(self.learners.shutdown)
        self.rollouts = RolloutGroup(cfg, max_len, tied, timeout_s=cfg.ray.startup_timeout_s, placement=placement)
        self._stack.callback(self.rollouts.shutdown)
        self.critic = None
        if self.algorithm.needs_critic:
            from rlvr.learner.critic import CriticWorker

            self.critic = LearnerGroup(cfg, timeout_s=cfg.ray.startup_timeout_s, placement=placement,
                                       worker_cls=CriticWorker, role="critic")
            self._stack.callback(self.critic.shutdown)
        placed = self.rollouts.wait_ready()
        info = self.learners.setup()
        if self.critic is not None:
            self.critic.setup()
            self.critic.timeout_s = cfg.ray.call_timeout_s
        self.learners.timeout_s = self.rollouts.timeout_s = cfg.ray.call_timeout_s
        self.sync = WeightSync(self.learners, self.rollouts)
        self.log.info(f"weight sync: {self.sync.describe()}")
        self.log.info(
            f"ready in {time.perf_counter() - t0:.1f} s: {cfg.learner.num_ranks} learner rank(s) "
            f"({info['params'] / 1e6:.2f}M params) on {info['nodes']}, {len(placed)} rollout engine(s) on "
            f"{sorted({p['node'] for p in placed})}"
        )

    def _start_judge_server(self) -> tuple[str, str]:
        """Start the model judge's own vLLM server (its own Ray actor and resources); its URL and served name."""
        from rlvr.remote import wait
        from rlvr.verify.judge_server import launch_judge_server, shutdown_judge_server

        js = self.cfg.reward.judge_server
        assert js is not None
        handle, url = launch_judge_server(
            js.model, num_cpus=js.num_cpus, num_gpus=js.num_gpus, vllm_args=js.vllm_args, env=js.env,
            ready_timeout_s=js.ready_timeout_s, log_dir=str(self.run_dir / "logs"),
        )
        self._stack.callback(shutdown_judge_server, handle)
        served = wait(handle.info.remote(), 60.0, "judge server info")["model"]
        self.log.info(f"judge server {served} at {url}")
        return url, served
