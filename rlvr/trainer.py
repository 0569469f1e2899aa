"""The driver loop: the single controller of a run.

prompts -> vLLM rollouts (Ray actors) -> verifiers (+ dynamic sampling) -> reward shaping, reference /
old log-probs, advantages -> DeepSpeed learners (Ray actors) -> in-place weight sync -> metrics ->
checkpoint. Set-up, resume and tear-down live in `rlvr.session`. A SIGTERM/SIGUSR1 during the loop
finishes the step, checkpoints and exits for requeue (`rlvr.preemption`).

With ``rollout.max_staleness`` >= 1 the rollouts come from `rlvr.rollout.producer`, which generates and
scores later steps' batches while this loop prepares, trains and syncs; the loop only takes each step's
batch and tells the producer when the weights change.
"""

from __future__ import annotations

import time
from pathlib import Path

from rlvr import preemption
from rlvr.config import RecipeConfig
from rlvr.engines import Engines
from rlvr.evaluate import evaluate
from rlvr.prepare import kl_controller, prepare_rows
from rlvr.session import Session
from rlvr.tracking import PhaseTimer, hms


def train(cfg: RecipeConfig, resume: str | None = None, engines: Engines | None = None) -> Path:
    """Run a recipe to completion (or from a checkpoint: ``resume`` is a path or ``auto``); the run directory.
    ``engines``: already started ones to use instead of starting its own (see `rlvr.engines`)."""
    started = time.perf_counter()
    with Session(cfg, resume, engines) as s:
        if s.start_step >= cfg.run.steps:  # resumed at the end: said so in the log, nothing started
            return s.run_dir
        t = time.perf_counter()
        if s.eval_sets and s.start_step == 0:
            s.sync.before_rollout()
            s.log.eval(0, evaluate(s.rollouts, s.verify, s.eval_sets, cfg))
        first_eval_s = time.perf_counter() - t
        before_step = time.perf_counter() - started
        s.log.record(s.start_step, "startup", {**s.startup, "startup/first_eval_s": first_eval_s,
                                                "startup/before_first_step_s": before_step})
        kl = kl_controller(cfg)
        kl.value = s.kl_value if s.kl_value is not None else kl.value
        source = s.rollout_source()  # the synchronous loop's, or the asynchronous producer (max_staleness >= 1)
        with preemption.deferred():
            for step in range(s.start_step + 1, cfg.run.steps + 1):
                t0, timer = time.perf_counter(), PhaseTimer()
                batch, sampling = source.next_batch(step, timer.times)
                rows, prepared = prepare_rows(cfg, s.algorithm, batch, s.learners, kl.value, timer, s.critic,
                                              step=step)
                with timer("update"):
                    update = s.learners.train(rows, batch.group_sizes, kl_coef=kl.value)
                if s.critic is not None:
                    with timer("critic_update"):
                        update |= s.critic.train(rows, batch.group_sizes)
                s.guard.check(step, update)  # non-finite updates were skipped; too many in a row abort
                with source.updating(step, timer.times):  # asynchronous: the engines wait for the new weights
                    sync = s.sync(version=step)
                kl.update(prepared.get("actor/kl_in_reward", update.get("actor/kl", 0.0)), len(rows))
                step_s = time.perf_counter() - t0
                metrics = {**batch.metrics(), **sampling, **prepared, **update, **timer.times, **sync,
                           "time/step_s": step_s, "time/engine_idle_s": max(0.0, step_s - source.engine_busy_s()),
                           "throughput/tokens_per_s": rows.num_tokens() / step_s,
                           "throughput/response_tokens_per_s": sum(batch.response_lengths) / step_s}
                if cfg.eval.interval and step % cfg.eval.interval == 0 and step < cfg.run.steps and s.eval_sets:
                    s.sync.before_rollout()
                    s.log.eval(step, evaluate(s.rollouts, s.verify, s.eval_sets, cfg))
                s.log.step(step, metrics)
                s.log.samples(step, batch.sample_records(cfg.logging.samples_per_step))
                stop = preemption.requested()
                if stop or step == cfg.run.steps or (cfg.checkpoint.interval and step % cfg.checkpoint.interval == 0):
                    s.save_checkpoint(step, kl.value)
                if stop:
                    raise preemption.Preempted(stop)
        if s.eval_sets:
            s.sync.before_rollout()
            s.log.eval(cfg.run.steps, evaluate(s.rollouts, s.verify, s.eval_sets, cfg))
        if cfg.checkpoint.final:
            s.log.info(f"final checkpoint: {s.export_final()}")
        total = time.perf_counter() - started
        s.log.info(f"time: {hms(total)} in all, {before_step:.1f} s ({100 * before_step / total:.0f}%) before the "
                   f"first step (start-up {s.ready_s:.1f} s, first eval {first_eval_s:.1f} s)")
        return s.run_dir
