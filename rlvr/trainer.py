"""The driver loop: the single controller of a run.

prompts -> vLLM rollouts (Ray actors) -> verifiers -> advantages -> DeepSpeed learners (Ray actors)
-> in-place weight sync -> metrics -> checkpoint. Set-up and tear-down live in `rlvr.session`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rlvr.config import RecipeConfig
from rlvr.evaluate import evaluate
from rlvr.rollout.batch import collect
from rlvr.session import Session
from rlvr.tracking import PhaseTimer


def train(cfg: RecipeConfig) -> Path:
    """Run a recipe to completion; returns the run directory."""
    with Session(cfg) as s:
        r, eval_tokens = cfg.rollout, cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
        if s.eval_sets:
            s.log.eval(0, evaluate(s.rollouts, s.verify, s.eval_sets, eval_tokens))
        for step in range(1, cfg.run.steps + 1):
            t0 = time.perf_counter()
            prompts = s.prompts.next_batch(r.prompts_per_step)
            batch = collect(s.rollouts, s.verify, prompts, r.n, r.temperature, r.top_p, r.max_new_tokens,
                            seed=cfg.run.seed * 1_000_000_007 + step * r.prompts_per_step * r.n)  # disjoint per step
            timer = PhaseTimer()
            with timer("advantage"):
                adv = s.algorithm.advantages(torch.tensor(batch.rewards), r.n)
                rows = batch.train_rows(adv.tolist())
            if s.algorithm.needs_reference:
                with timer("reference"):
                    rows.ref_logprobs = s.learners.compute_logprobs(rows, "reference")
            if cfg.algorithm.mini_batches * cfg.algorithm.epochs > 1:
                with timer("old_logprobs"):
                    rows.old_logprobs = s.learners.compute_logprobs(rows, "policy")
            with timer("update"):
                update = s.learners.train(rows, r.n)
            sync = s.sync(version=step)
            metrics = {**batch.metrics(), **update, **timer.times, **sync,
                       "advantage/abs_mean": adv.abs().mean().item(), "time/step_s": time.perf_counter() - t0}
            if cfg.eval.interval and step % cfg.eval.interval == 0 and step < cfg.run.steps and s.eval_sets:
                s.log.eval(step, evaluate(s.rollouts, s.verify, s.eval_sets, eval_tokens))
            if cfg.checkpoint.interval and step % cfg.checkpoint.interval == 0:
                s.learners.save_hf(str(s.run_dir / "checkpoints" / f"step_{step}"))
            s.log.step(step, metrics)
            s.log.samples(step, batch.sample_records(cfg.logging.samples_per_step))
        if s.eval_sets:
            s.log.eval(cfg.run.steps, evaluate(s.rollouts, s.verify, s.eval_sets, eval_tokens))
        if cfg.checkpoint.final:
            s.log.info(f"final checkpoint: {s.learners.save_hf(str(s.run_dir / 'checkpoints' / 'final'))}")
        return s.run_dir
