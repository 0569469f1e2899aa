"""Weight sync from the learner group into every rollout engine: in place, bucketed, timed.

On CPU (and as the portable path) each bucket is gathered by the learners (ZeRO-3 shards are
gathered once per bucket), put in Ray's shared-memory object store once, and loaded by every
engine through vLLM's ``reload_weights`` — no checkpoint written to disk.
"""

from __future__ import annotations

import time

from rlvr.learner.group import LearnerGroup
from rlvr.rollout.group import RolloutGroup


def plan_buckets(manifest: list[tuple[str, int]], bucket_bytes: int) -> list[list[str]]:
    """Group parameter names, in order, into buckets of at most ``bucket_bytes`` (a parameter
    larger than that gets a bucket of its own)."""
    buckets: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for name, nbytes in manifest:
        if cur and size + nbytes > bucket_bytes:
            buckets.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += nbytes
    if cur:
        buckets.append(cur)
    return buckets


class WeightSync:
    def __init__(self, learners: LearnerGroup, rollouts: RolloutGroup, bucket_bytes: int = 256 << 20) -> None:
        self.learners, self.rollouts = learners, rollouts
        self.dtype = learners.cfg.model.dtype  # what the engines run, whatever the learner's master dtype
        self.buckets = plan_buckets(learners.weight_manifest(), bucket_bytes)

    def __call__(self, version: int) -> dict[str, float]:
        start = time.perf_counter()
        nbytes = 0.0
        for names in self.buckets:
            ref = self.learners.export_weights(names, dtype=self.dtype)
            nbytes += self.rollouts.update_weights(ref, version)[0]["bytes"]
        return {"sync/bytes": nbytes, "sync/buckets": float(len(self.buckets)),
                "time/sync_s": time.perf_counter() - start}
