"""Everything a run holds open: run directory and log, data, the engines (Ray, verifier workers, rollout
engines: `rlvr.engines`, its own or shared), learners and the weight sync; started in order, torn down in
reverse (also on error). A resumed session restores the checkpoint's learner, critic, data position and KL
coefficient and pushes the weights into the engines before the first rollout; a session on shared engines
pushes its fresh policy into them the same way."""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlvr.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    config_changes,
    read_state,
    step_dir_name,
    trainer_state,
)
from rlvr.config import RecipeConfig
from rlvr.data.dataset import PromptSampler, read_recipe_data
from rlvr.engines import Engines
from rlvr.lifecycle import Started
from rlvr.loggers import build_loggers
from rlvr.remote import WorkerError
from rlvr.tracking import RunLog, open_run_dir

if TYPE_CHECKING:
    from rlvr.rollout.producer import Produced, Producer
    from rlvr.rollout.sampling import SyncRollouts

ROLLOUTS = "rollouts.pkl"
"""A checkpoint's finished asynchronous rollout batches for the steps after it (`Session.save_checkpoint`)."""

CHECKPOINT_BYTES_PER_PARAM = 16  # weights + fp32 master + Adam moments + the Hugging Face export, roughly


class UpdateGuard:
    """Counts updates skipped for NaN/Inf loss or gradients, per role (``actor``, ``critic``); aborts after
    ``limit`` steps in a row where every update of one role was skipped (a diverged run burns compute and
    checkpoints nothing useful). Per role, because a critic that keeps training must not hide a policy
    whose every update is skipped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def check(self, step: int, update: dict[str, float]) -> None:
        for key, skipped in update.items():
            if not key.endswith("/skipped_updates"):
                continue
            role = key.removesuffix("/skipped_updates")
            applied = update.get(f"{role}/optimizer_steps", 0.0)
            self.total[role] = self.total.get(role, 0) + int(skipped)
            self.in_a_row[role] = self.in_a_row.get(role, 0) + 1 if skipped and skipped >= applied else 0
        for role, count in self.in_a_row.items():
            if count >= self.limit:
                raise TrainingDiverged(
                    f"step {step}: every {role} update of the last {count} steps had a NaN/Inf loss or gradient "
                    f"and was skipped ({self.total[role]} skipped in all; learner.max_skipped_steps={self.limit}); "
                    "the run stops here. Lower the learning rate, check the data and rewards, or resume from an "
                    "earlier checkpoint")


class TrainingDiverged(RuntimeError):
    """Too many non-finite updates in a row."""


class Session(Started):
    """One run. ``engines``: use these (already started, e.g. shared by several runs one after another)
    instead of starting its own; they must suit the recipe (`rlvr.engines.Engines.mismatch`)."""

    def __init__(self, cfg: RecipeConfig, resume: str | None = None, engines: Engines | None = None) -> None:
        self.cfg, self.resume, self._shared = cfg, resume, engines
        self.start_step, self.kl_value = 0, None
        self.producer: Producer | None = None
        self._carried: list[Produced] = []  # batches a checkpoint recorded for the steps after it
        self.guard = UpdateGuard(cfg.learner.max_skipped_steps)
        super().__init__()

    def _start(self) -> None:
        from rlvr.algorithms import get_algorithm
        from rlvr.sync_probe import SyncProbe
        from rlvr.weight_sync import WeightSync

        cfg, t0 = self.cfg, time.perf_counter()
        ckpt, state = self._open_run()
        if self.start_step >= cfg.run.steps:
            self.log.info(f"nothing to train: the checkpoint {ckpt} is at step {self.start_step} and run.steps is "
                          f"{cfg.run.steps} (raise run.steps to train further)")
            return
        row_verifiers = self._load_data(state)
        phases: dict[str, float] = {"data": time.perf_counter() - t0}
        self.algorithm = get_algorithm(cfg.algorithm, max_new_tokens=cfg.rollout.max_new_tokens)
        engines = self._engines(row_verifiers)
        self.verify, self.rollouts = engines.verify, engines.rollouts
        from rlvr.rollout.producer import check_async_layout

        check_async_layout(cfg, engines.placement.layout.gpus)  # before the learners start
        t = time.perf_counter()
        info = self._start_learners(engines)
        learners_s = time.perf_counter() - t
        placed = engines.wait_ready()
        if self._shared is None:  # shared engines started before this run
            phases |= {k: v for k, v in engines.startup.items() if not k.startswith("engines")}
        phases["learners"] = learners_s
        if self._shared is None:
            phases |= {k: v for k, v in engines.startup.items() if k.startswith("engines")}
        t = time.perf_counter()
        probe = SyncProbe.build(cfg.rollout.sync_probe, cfg.model.dtype, [r.token_ids for r in self.prompts.rows])
        self.sync = WeightSync(self.learners, self.rollouts, log=self.log.info, probe=probe)
        phases["weight sync set-up"] = time.perf_counter() - t
        self.log.info(f"weight sync: {self.sync.describe()}")
        chunk = info["logprob_chunk_tokens"]
        why = " (ZeRO-3 with a frozen output layer)" if not chunk and cfg.learner.logprob_chunk_tokens else ""
        self.log.info(f"learner micro-batches: {info['batching']}; log-probs "
                      + (f"in chunks of {chunk} tokens" if chunk else f"over whole micro-batches{why}"))
        t = time.perf_counter()
        if ckpt is not None:
            self._restore(ckpt)
            phases["restore"] = time.perf_counter() - t
        elif self._shared is not None:  # shared engines hold whatever policy the previous run left
            self.sync(version=0)
            phases["first sync"] = time.perf_counter() - t
        self._log_pinning(placed)
        lora = cfg.model.lora
        trained = (f", LoRA r={lora.r}: {info['trainable_params'] / 1e6:.3g}M trained "
                   f"({100 * info['trainable_params'] / info['params']:.2g}%)" if lora is not None else "")
        self.ready_s = time.perf_counter() - t0
        self.log.info(
            f"ready in {self.ready_s:.1f} s: {cfg.learner.num_ranks} learner rank(s) "
            f"({info['params'] / 1e6:.2f}M params{trained}) on {info['nodes']}, {len(placed)} rollout engine(s) on "
            f"{sorted({p['node'] for p in placed})}"
        )
        self.startup = {"startup/ready_s": self.ready_s} | {
            f"startup/{name.split(' (')[0].replace(' ', '_').replace('-', '_')}_s": s for name, s in phases.items()}
        self.log.info("start-up: " + ", ".join(f"{name} {s:.1f} s" for name, s in phases.items())
                      + " (the engines load while the learners start)")

    def _open_run(self) -> tuple[Path | None, dict[str, Any] | None]:
        """Run directory, log and checkpoint writer; the checkpoint to resume from and its trainer state, if
        any. A checkpoint of another experiment is refused before anything in the run directory changes; a
        resumed run's logs are cut back to its step."""
        cfg = self.cfg

        def same_experiment(ckpt: Path) -> None:
            changed = config_changes(read_state(ckpt)["config"], cfg)
            if changed:
                raise CheckpointError(f"cannot resume from {ckpt}: the recipe changed in ways that make it another "
                                      f"experiment: {'; '.join(changed)}. Restore those values or start a new run")

        self.run_dir, ckpt = open_run_dir(cfg, self.resume, accept=same_experiment)
        self.checkpoints = CheckpointWriter(self.run_dir, cfg.checkpoint.keep)
        state = read_state(ckpt) if ckpt is not None else None
        if state is not None:
            self.start_step, self.kl_value = int(state["step"]), float(state["kl_coef"])
        self.log = RunLog(self.run_dir, cfg.run.steps, loggers=build_loggers(cfg, self.run_dir))
        self._stack.callback(self.log.close)
        self.log.info(f"run directory: {self.run_dir}  (watch: rlvr samples {self.run_dir} --last; "
                      f"rlvr plot {self.run_dir} --out {self.run_dir}/curves.png; worker logs in {self.run_dir}/logs)")
        if self.resume is not None and ckpt is None:
            self.log.info(f"resume {self.resume}: no checkpoint yet in {self.run_dir}; starting from step 0")
        return ckpt, state

    def _load_data(self, state: dict[str, Any] | None) -> list[str | None]:
        """Training prompts (at the checkpoint's position, ``state`` its trainer state) and eval sets, checked
        row by row; every row's verifier name, for the verifier pool."""
        cfg = self.cfg
        train_rows, self.eval_sets = read_recipe_data(cfg, self.log.info)
        self.prompts = PromptSampler(train_rows, cfg.data.shuffle, cfg.run.seed)
        if state is not None:
            self.prompts.load_state_dict(state["sampler"])
        return [row.verifier for rows in [train_rows, *self.eval_sets.values()] for row in rows]

    def _engines(self, row_verifiers: list[str | None]) -> Engines:
        """The shared engines, checked against this recipe, or engines of this run's own."""
        critic = self.algorithm.needs_critic
        if self._shared is not None:
            why = self._shared.mismatch(self.cfg, critic, row_verifiers)
            if why:
                raise ValueError(f"these engines cannot run {self.cfg.run.name}: {'; '.join(why)}")
            return self._shared
        return self._stack.enter_context(
            Engines(self.cfg, critic, row_verifiers, self.log.info, log_dir=self.run_dir / "logs"))

    def _start_learners(self, engines: Engines) -> dict[str, Any]:
        """The policy learners and, for PPO, the critic, on the engines' placement; rank 0's summary once
        every rank is set up (the engines keep loading meanwhile)."""
        from rlvr.learner.group import LearnerGroup

        cfg = self.cfg
        logs = str(self.run_dir / "logs")
        self.learners = LearnerGroup(cfg, timeout_s=cfg.ray.startup_timeout_s, placement=engines.placement,
                                     log_dir=logs)
        self._stack.callback(self.learners.shutdown)
        self.critic = None
        if self.algorithm.needs_critic:
            from rlvr.learner.critic import CriticWorker

            self.critic = LearnerGroup(cfg, timeout_s=cfg.ray.startup_timeout_s, placement=engines.placement,
                                       worker_cls=CriticWorker, role="critic", log_dir=logs)
            self._stack.callback(self.critic.shutdown)
        info = self.learners.setup()
        self.learners.timeout_s = cfg.ray.call_timeout_s
        if self.critic is not None:
            self.critic.setup()
            self.critic.timeout_s = cfg.ray.call_timeout_s
        self._check_disk(self._checkpoint_bytes(info))
        return info

    def _checkpoint_bytes(self, info: dict[str, Any]) -> int:
        """About how many bytes one checkpoint takes: weights, master copy, optimizer moments and the export of
        every trained parameter; with LoRA the adapter's (the frozen base is not saved) plus, with
        ``checkpoint.merge_lora``, the merged model at ``model.dtype``."""
        if self.cfg.model.lora is None:
            return info["params"] * CHECKPOINT_BYTES_PER_PARAM * (2 if self.critic is not None else 1)
        merged = info["params"] * 4 if self.cfg.checkpoint.merge_lora else 0
        critic = info["params"] * CHECKPOINT_BYTES_PER_PARAM if self.critic is not None else 0
        return info["trainable_params"] * CHECKPOINT_BYTES_PER_PARAM + merged + critic

    def _restore(self, ckpt: Path) -> None:
        """Learner and critic state from ``ckpt``, pushed into the engines: they must sample from the
        restored policy."""
        self.learners.load_state(str(ckpt / "learner"))
        if (ckpt / ROLLOUTS).is_file():
            with open(ckpt / ROLLOUTS, "rb") as f:
                self._carried = pickle.load(f)
        if self.critic is not None:
            self.critic.load_state(str(ckpt / "critic"))
        pushed = self.sync(version=self.start_step)
        self.log.info(f"resumed from {ckpt} at step {self.start_step}; weights pushed to the engines in "
                      f"{pushed['time/sync_s']:.1f} s")

    def rollout_source(self) -> SyncRollouts | Producer:
        """Where each step's batch comes from: the synchronous loop's rollouts, or with ``rollout.max_staleness``
        >= 1 the asynchronous producer (stopped with the session), holding the batches a resumed checkpoint
        recorded."""
        from rlvr.algorithms.base import wants_greedy
        from rlvr.rollout.sampling import SyncRollouts

        cfg, greedy = self.cfg, wants_greedy(self.algorithm)  # ReMax: a greedy baseline response per prompt
        if cfg.rollout.max_staleness == 0:
            return SyncRollouts(cfg, self.rollouts, self.verify, self.prompts, self.sync, greedy=greedy)
        from rlvr.rollout.producer import Producer

        if cfg.algorithm.tis_cap is None:
            self.log.info(f"note: rollout.max_staleness={cfg.rollout.max_staleness} without algorithm.tis_cap: "
                          "samples up to that many versions old are trained on without importance correction")
        self.producer = Producer(cfg, self.rollouts, self.verify, self.prompts, version=self.start_step,
                                 carried=self._carried, greedy=greedy)
        self._stack.callback(self.producer.close)
        mode = f"partial rollouts in {cfg.rollout.segment_tokens}-token segments" if cfg.rollout.partial \
            else "whole responses"
        self.log.info(f"asynchronous rollouts: up to {cfg.rollout.max_staleness} version(s) stale, {mode}"
                      + (f"; {len(self._carried)} batch(es) carried over from the checkpoint" if self._carried else ""))
        return self.producer

    def _log_pinning(self, placed: list[dict[str, Any]]) -> None:
        """Where the engines are pinned (CPU runs with ``resources.pin_cpus``)."""
        cores = {tuple(p["cores"]) for p in placed if p.get("cores")}
        if cores:
            self.log.info(f"CPU pinning: engines on cores {sorted({c for t in cores for c in t})}, learners on the "
                          "other cores of their node")

    def save_checkpoint(self, step: int, kl_value: float) -> Path:
        """A complete checkpoint of step ``step`` (see `rlvr.checkpoint`), or a clear error and none. With
        asynchronous rollouts the producer is held while it is written: the batches it finished for later
        steps go into the checkpoint (``rollouts.pkl``) with the prompt position after them."""
        t0 = time.perf_counter()
        tmp = self.checkpoints.begin(step)
        held = self.producer is not None
        try:
            sampler = self.prompts.state_dict()
            if self.producer is not None:
                carried, sampler = self.producer.drain()
                with open(tmp / ROLLOUTS, "wb") as f:
                    pickle.dump(carried, f)
            self.learners.save_state(str(tmp / "learner"))
            if self.critic is not None:
                self.critic.save_state(str(tmp / "critic"))
            self.learners.save_hf(str(tmp / "hf"))
            state = trainer_state(step, self.cfg, sampler, kl_value)
            path = self.checkpoints.commit(tmp, step, state)
        except BaseException as err:
            self.checkpoints.abort(tmp)
            if isinstance(err, OSError | WorkerError):
                raise CheckpointError(f"checkpoint of step {step} failed and was discarded ({err}); the previous "
                                      "checkpoint is intact") from err
            raise
        finally:
            if held and self.producer is not None:
                self.producer.release()
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

    def _check_disk(self, need: int) -> None:
        """Refuse to start when one checkpoint (``need`` bytes) cannot fit the output file system; warn when
        ``keep`` + 1 (the peak while a new one is written) cannot."""
        free = shutil.disk_usage(self.run_dir).free
        if free < need:
            raise CheckpointError(f"{self.run_dir}: {free / 2**30:.1f} GiB free, but one checkpoint needs about "
                                  f"{need / 2**30:.1f} GiB; free space or set run.output_dir elsewhere")
        peak = need * (self.cfg.checkpoint.keep + 1)
        if free < peak:
            self.log.info(f"warning: {free / 2**30:.1f} GiB free in {self.run_dir}; checkpoint.keep="
                          f"{self.cfg.checkpoint.keep} needs about {peak / 2**30:.1f} GiB")
