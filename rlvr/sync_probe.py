"""Proof that the engines sample the learner's policy, after every weight sync.

The worst RL bugs are silent: an engine that misses a bucket, keeps a stale prefix cache or never loads
an adapter samples an old policy for as long as the run lasts, and every curve still looks plausible
(peers have shipped exactly that: adapters never synced, engines sampling initial weights for weeks).
After each sync, every engine scores a few fixed sequences by teacher forcing (vLLM ``prompt_logprobs``)
while the learner scores the same tokens; the largest gap on any token is logged as
``sync/logprob_max_abs_diff`` and a gap over the threshold stops the run, naming the engine.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rlvr.learner.batch import TrainRows
from rlvr.remote import wait
from rlvr.weight_sync import WeightSyncError

if TYPE_CHECKING:
    from rlvr.config.schema import SyncProbeConfig
    from rlvr.learner.group import LearnerGroup
    from rlvr.rollout.group import RolloutGroup

__all__ = ["ProbeMismatch", "SyncProbe", "probe_rows"]

_THRESHOLD = {"float32": 1e-3, "bfloat16": 1.0, "float16": 1.0}


def probe_rows(prompts: list[list[int]], sequences: int, tokens: int) -> TrainRows | None:
    """The first ``sequences`` prompts with at least two tokens, scored on their last ``tokens``
    positions (each given everything before it); None when no prompt is long enough."""
    ids = [p for p in prompts if len(p) >= 2][:sequences]
    if not ids:
        return None
    return TrainRows(input_ids=ids, prompt_lens=[max(1, len(p) - tokens) for p in ids])


class SyncProbe:
    """Compares engine and learner log-probs of ``rows``; `check` raises `ProbeMismatch` over ``threshold``."""

    def __init__(self, rows: TrainRows, threshold: float) -> None:
        self.rows, self.threshold = rows, threshold

    @classmethod
    def build(cls, cfg: SyncProbeConfig, dtype: str, prompts: list[list[int]]) -> SyncProbe | None:
        """The run's probe, or None when it is switched off or the data has no prompt to probe with."""
        rows = probe_rows(prompts, cfg.sequences, cfg.tokens) if cfg.enabled else None
        if rows is None:
            return None
        return cls(rows, cfg.max_abs_diff if cfg.max_abs_diff is not None else _THRESHOLD.get(dtype, 1.0))

    def describe(self) -> str:
        n = sum(len(ids) - p for ids, p in zip(self.rows.input_ids, self.rows.prompt_lens))
        return (f"after every sync, {len(self.rows)} fixed sequence(s) ({n} tokens) scored by every engine and the "
                f"learner must agree within {self.threshold:g} per token")

    def check(self, learners: LearnerGroup, rollouts: RolloutGroup, version: int) -> dict[str, float]:
        """``sync/logprob_max_abs_diff`` (over engines, sequences and tokens) and ``time/sync_probe_s``."""
        start = time.perf_counter()
        rows = self.rows
        refs = [w.sequence_logprobs.remote(rows.input_ids, rows.prompt_lens) for w in rollouts.workers]
        learner = learners.compute_logprobs(rows, "policy")  # while the engines score
        engines = wait(refs, rollouts.timeout_s, "sync probe: rollout sequence_logprobs")
        gaps = [_max_abs(engine, learner) for engine in engines]
        worst = max(gaps)
        if worst > self.threshold:
            off = [f"rollout engine {i} (max |diff| {g:.3g})" for i, g in enumerate(gaps) if g > self.threshold]
            raise ProbeMismatch(
                f"weight sync check failed at version {version}: {', '.join(off)} scored the probe sequences "
                f"differently from the learner (threshold {self.threshold:g}): the engine is not sampling the "
                "learner's policy. Stopped instead of training on it (rollout.sync_probe sets the check)"
            )
        return {"sync/logprob_max_abs_diff": worst, "time/sync_probe_s": time.perf_counter() - start}


class ProbeMismatch(WeightSyncError):
    """An engine's log-probs left the learner's after a sync."""


def _max_abs(a: list[list[float]], b: list[list[float]]) -> float:
    if [len(x) for x in a] != [len(x) for x in b]:
        raise ProbeMismatch(f"sync probe: the engine scored {[len(x) for x in a]} tokens per sequence, "
                            f"the learner {[len(x) for x in b]}")
    return max((abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys)), default=0.0)
