"""The driver loop: the single controller of a run.

prompts -> vLLM rollouts (Ray actors) -> verifiers (+ dynamic sampling) -> reward shaping, reference /
old log-probs, advantages -> DeepSpeed learners (Ray actors) -> in-place weight sync -> metrics ->
checkpoint. Set-up and tear-down live in `rlvr.session`.
"""

from __future__ import annotations

import time
from pathlib import Path

from rlvr.config import RecipeConfig
from rlvr.evaluate import evaluate
from rlvr.prepare import kl_controller, prepare_rows
from rlvr.rollout.sampling import sample_step
from rlvr.session import Session
from rlvr.tracking import PhaseTimer


def train(cfg: RecipeConfig) -> Path:
    """Run a recipe to completion; returns the run directory."""
    with Session(cfg) as s:
        r, eval_tokens = cfg.rollout, cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
        if s.eval_sets:
            s.sync.before_rollout()
            s.log.eval(0, evaluate(s.rollouts, s.verify, s.eval_sets, eval_tokens))
        kl = kl_controller(cfg)
        for step in range(1, cfg.run.steps + 1):
            t0, timer = time.perf_counter(), PhaseTimer()
            s.sync.before_rollout()  # engines awake (GPU sleep mode); no-ops otherwise
            batch, sampling = sample_step(cfg, s.rollouts, s.verify, s.prompts, step)
            s.sync.after_rollout()  # engines' GPU memory to the learners until the sync
            rows, prepared = prepare_rows(cfg, s.algorithm, batch, s.learners, kl.value, timer, s.critic)
            with timer("update"):
                update = s.learners.train(rows, r.n, kl_coef=kl.value)
            if s.critic is not None:
                with timer("critic_update"):
                    update |= s.critic.train(rows, r.n)
            sync = s.sync(version=step)
            kl.update(prepared.get("actor/kl_in_reward", update.get("actor/kl", 0.0)), len(rows))
            metrics = {**batch.metrics(), **sampling, **prepared, **update, **timer.times, **sync,
                       "time/step_s": time.perf_counter() - t0}
            if cfg.eval.interval and step % cfg.eval.interval == 0 and step < cfg.run.steps and s.eval_sets:
                s.sync.before_rollout()
                s.log.eval(step, evaluate(s.rollouts, s.verify, s.eval_sets, eval_tokens))
            if cfg.checkpoint.interval and step % cfg.checkpoint.interval == 0:
                s.learners.save_hf(str(s.run_dir / "checkpoints" / f"step_{step}"))
            s.log.step(step, metrics)
            s.log.samples(step, batch.sample_records(cfg.logging.samples_per_step))
        if s.eval_sets:
            s.sync.before_rollout()
            s.log.eval(cfg.run.steps, evaluate(s.rollouts, s.verify, s.eval_sets, eval_tokens))
        if cfg.checkpoint.final:
            s.log.info(f"final checkpoint: {s.learners.save_hf(str(s.run_dir / 'checkpoints' / 'final'))}")
        return s.run_dir
