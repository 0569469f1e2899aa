"""Everything a run holds open: run directory and log, data, Ray, verifier workers, rollout
engines, learners and the weight sync; started in order, torn down in reverse (also on error).
A resumed session restores the checkpoint's learner, critic, data position and KL coefficient and
pushes the weights into the engines before the first rollout."""

from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rlvr.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    config_changes,
    read_state,
    step_dir_name,
    trainer_state,
)
from rlvr.config import RecipeConfig
from rlvr.data.dataset import PromptRow, PromptSampler, build_rows
from rlvr.loggers import build_loggers
from rlvr.remote import WorkerError
from rlvr.tracking import RunLog, open_run_dir

CHECKPOINT_BYTES_PER_PARAM = 16  # weights + fp32 master + Adam moments + the Hugging Face export, roughly


class UpdateGuard:
    """Counts updates skipped for NaN/Inf loss or gradients; aborts after ``limit`` steps in a row
    where every update was skipped (a diverged run burns compute and checkpoints nothing useful)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.in_a_row, self.total = limit, 0, 0

    def check(self, step: int, update: dict[str, float]) -> None:
        skipped = sum(v for k, v in update.items() if k.endswith("/skipped_updates"))
        applied = sum(v for k, v in update.items() if k.endswith("/optimizer_steps"))
        self.total += int(skipped)
        self.in_a_row = self.in_a_row + 1 if skipped and skipped >= applied else 0
        if self.in_a_row >= self.limit:
            raise TrainingDiverged(
                f"step {step}: every update of the last {self.in_a_row} steps had a NaN/Inf loss or gradient and "
                f"was skipped ({self.total} skipped in all; learner.max_skipped_steps={self.limit}); the run "
                "stops here. Lower algorithm.lr, check the data and rewards, or resume from an earlier checkpoint")


class TrainingDiverged(RuntimeError):
    """Too many non-finite updates in a row."""


class Session:
    def __init__(self, cfg: RecipeConfig, resume: str | None = None) -> None:
        self.cfg, self.resume = cfg, resume
        self._stack = ExitStack()
        self.start_step, self.kl_value = 0, None
        self.guard = UpdateGuard(cfg.learner.max_skipped_steps)

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

        def same_experiment(ckpt: Path) -> None:
            changed = config_changes(read_state(ckpt)["config"], cfg)
            if changed:
                raise CheckpointError(f"cannot resume from {ckpt}: the recipe changed in ways that make it another "
                                      f"experiment: {'; '.join(changed)}. Restore those values or start a new run")

        # refused before anything in the run directory changes; then a resumed run's logs are cut to its step
        self.run_dir, ckpt = open_run_dir(cfg, self.resume, accept=same_experiment)
        self.checkpoints = CheckpointWriter(self.run_dir, cfg.checkpoint.keep)
        state = read_state(ckpt) if ckpt else None
        if state is not None:
            self.start_step, self.kl_value = int(state["step"]), float(state["kl_coef"])
        self.log = RunLog(self.run_dir, cfg.run.steps, loggers=build_loggers(cfg, self.run_dir))
        self._stack.callback(self.log.close)
        self.log.info(f"run directory: {self.run_dir}")
        if self.resume is not None and ckpt is None:
            self.log.info(f"resume {self.resume}: no checkpoint yet in {self.run_dir}; starting from step 0")
        if self.start_step >= cfg.run.steps:
            self.log.info(f"nothing to train: the checkpoint {ckpt} is at step {self.start_step} and run.steps is "
                          f"{cfg.run.steps} (raise run.steps to train further)")
            return

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
        if state is not None:
            self.prompts.load_state_dict(state["sampler"])
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
        self._check_disk(info["params"] * (2 if self.critic is not None else 1))
        self.sync = WeightSync(self.learners, self.rollouts)
        self.log.info(f"weight sync: {self.sync.describe()}")
        if ckpt is not None:
            self.learners.load_state(str(ckpt / "learner"))
            if self.critic is not None:
                self.critic.load_state(str(ckpt / "critic"))
            pushed = self.sync(version=self.start_step)  # the engines must sample from the restored policy
            self.log.info(f"resumed from {ckpt} at step {self.start_step}; weights pushed to the engines in "
                          f"{pushed['time/sync_s']:.1f} s")
        self.log.info(
            f"ready in {time.perf_counter() - t0:.1f} s: {cfg.learner.num_ranks} learner rank(s) "
            f"({info['params'] / 1e6:.2f}M params) on {info['nodes']}, {len(placed)} rollout engine(s) on "
            f"{sorted({p['node'] for p in placed})}"
        )

    def save_checkpoint(self, step: int, kl_value: float) -> Path:
        """A complete checkpoint of step ``step`` (see `rlvr.checkpoint`), or a clear error and none."""
        t0 = time.perf_counter()
        tmp = self.checkpoints.begin(step)
        try:
            self.learners.save_state(str(tmp / "learner"))
            if self.critic is not None:
                self.critic.save_state(str(tmp / "critic"))
            self.learners.save_hf(str(tmp / "hf"))
            state = trainer_state(step, self.cfg, self.prompts.state_dict(), kl_value)
            path = self.checkpoints.commit(tmp, step, state)
        except BaseException as err:
            self.checkpoints.abort(tmp)
            if isinstance(err, OSError | WorkerError):
                raise CheckpointError(f"checkpoint of step {step} failed and was discarded ({err}); the previous "
                                      "checkpoint is intact") from err
            raise
        self.log.info(f"checkpoint: {path} ({time.perf_counter() - t0:.1f} s)")
        return path

    def export_final(self) -> Path:
        """``checkpoints/final``: the last checkpoint's Hugging Face export, hard-linked (no second copy)."""
        last = self.checkpoints.root / step_dir_name(self.cfg.run.steps) / "hf"
        final = self.checkpoints.root / "final"
        shutil.rmtree(final, ignore_errors=True)
        try:
            shutil.copytree(last, final, copy_function=os.link)
        except OSError:  # a file system without hard links
            shutil.rmtree(final, ignore_errors=True)
            shutil.copytree(last, final)
        return final

    def _check_disk(self, params: int) -> None:
        """Refuse to start when one checkpoint cannot fit the output file system; warn when ``keep`` + 1
        (the peak while a new one is written) cannot."""
        need = params * CHECKPOINT_BYTES_PER_PARAM
        free = shutil.disk_usage(self.run_dir).free
        if free < need:
            raise CheckpointError(f"{self.run_dir}: {free / 2**30:.1f} GiB free, but one checkpoint needs about "
                                  f"{need / 2**30:.1f} GiB; free space or set run.output_dir elsewhere")
        peak = need * (self.cfg.checkpoint.keep + 1)
        if free < peak:
            self.log.info(f"warning: {free / 2**30:.1f} GiB free in {self.run_dir}; checkpoint.keep="
                          f"{self.cfg.checkpoint.keep} needs about {peak / 2**30:.1f} GiB")

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
