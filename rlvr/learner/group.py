"""A thin handle over the data-parallel learner ranks (Ray actors, one DeepSpeed group).

The driver hands it a whole rollout batch; it cuts mini-batches (whole groups each, of any size), shards
them over ranks by tokens, and passes every rank the mini-batch-wide normalisers so the update is
independent of how the batch is split.
"""

from __future__ import annotations

from typing import Any

import ray

from rlvr.config.schema import RecipeConfig
from rlvr.learner.batch import TrainRows
from rlvr.learner.packing import balanced_partition, group_mini_batches
from rlvr.learner.worker import LearnerWorker
from rlvr.placement import Placement
from rlvr.remote import track, wait
from rlvr.worker_log import role_log


class LearnerGroup:
    def __init__(
        self, cfg: RecipeConfig, timeout_s: float, placement: Placement,
        worker_cls: type[LearnerWorker] = LearnerWorker, role: str = "actor", log_dir: str | None = None,
    ) -> None:
        """``log_dir``: each rank's output goes to ``log_dir/<learner|critic>-<rank>.log`` (`rlvr.worker_log`)."""
        self.cfg, self.timeout_s, self.role = cfg, timeout_s, role
        n = cfg.learner.num_ranks
        slots = placement.layout.critics if role == "critic" else placement.layout.learners
        actor = ray.remote(worker_cls)
        addr, port = placement.free_port_at(slots[0])  # rank 0 hosts the process group's store
        logs = [role_log(log_dir, "learner" if role == "actor" else role, rank) for rank in range(n)]
        self.workers = [actor.options(**placement.options(slot)).remote(cfg, rank, n, addr, port, logs[rank])
                        for rank, slot in enumerate(slots)]
        for rank, w in enumerate(self.workers):
            track(w, f"{'policy learner' if role == 'actor' else role} rank {rank}", logs[rank])
        # Start loading now; `setup` waits, so the rollout engines can start meanwhile.
        self._setup_refs = [w.setup.remote() for w in self.workers]

    def setup(self) -> dict[str, Any]:
        """Wait for every rank to build its DeepSpeed engine; rank 0's summary and every rank's ``nodes``."""
        results = wait(self._setup_refs, self.timeout_s, f"{self.role} setup")
        return {**results[0], "nodes": sorted({r["node"] for r in results})}

    def _split(self, rows: TrainRows) -> list[list[int]]:
        """Row indices per rank, token loads balanced (`rlvr.learner.packing.balanced_partition`): every rank
        waits for the most loaded one at each collective."""
        return balanced_partition([len(ids) for ids in rows.input_ids], len(self.workers))

    def _shards(self, rows: TrainRows) -> list[TrainRows]:
        return [rows.select(idx) for idx in self._split(rows)]

    def _per_row(self, rows: TrainRows, method: str, what: str, *args: Any) -> list[list[float]]:
        """Run a per-row method on every rank's share; results back in row order."""
        split = self._split(rows)
        refs = [getattr(w, method).remote(rows.select(idx), *args) for w, idx in zip(self.workers, split)]
        out: list[list[float]] = [[] for _ in range(len(rows))]
        for idx, part in zip(split, wait(refs, self.timeout_s, what)):
            for i, values in zip(idx, part):
                out[i] = values
        return out

    def compute_logprobs(self, rows: TrainRows, which: str) -> list[list[float]]:
        return self._per_row(rows, "compute_logprobs", f"learner {which} log-probs", which)

    def train(self, rows: TrainRows, group_sizes: list[int], kl_coef: float = 0.0) -> dict[str, float]:
        """All optimizer steps for one rollout batch: ``epochs`` x ``mini_batches``, each mini-batch whole
        groups (``group_sizes``: the batch's groups in row order, `RolloutBatch.group_sizes`; they may differ
        in size, so mini-batches may differ in rows: `rlvr.learner.packing.group_mini_batches`)."""
        a = self.cfg.algorithm
        if sum(group_sizes) != len(rows):
            raise ValueError(f"learner train: groups of {sum(group_sizes)} rows in all, but {len(rows)} rows")
        cuts = group_mini_batches(group_sizes, a.mini_batches)
        sums: dict[str, float] = {}
        tokens = loss = grad_norm = skipped = 0.0
        results: list[dict[str, float]] = []
        for _ in range(a.epochs):
            for idx in cuts:
                mb = rows.select(idx)
                n_tok, n_seq = float(max(mb.response_tokens(), 1)), float(max(mb.active_sequences(), 1))
                refs = [w.train_step.remote(s, n_tok, n_seq, kl_coef) for w, s in zip(self.workers, self._shards(mb))]
                results = wait(refs, self.timeout_s, "learner train_step")
                tokens += n_tok
                for res in results:
                    _add_sums(sums, res)
                    loss += res["part/loss"]
                grad_norm += results[0]["grad_norm"]
                skipped += results[0]["skipped"]  # the ranks agree: DeepSpeed's overflow flag is all-reduced
        steps = a.epochs * a.mini_batches
        metrics = {k: v / max(tokens, 1.0) for k, v in sums.items()}
        metrics.update({
            f"{self.role}/loss": loss / steps,
            f"{self.role}/grad_norm": grad_norm / max(steps - skipped, 1.0),  # over the updates applied
            f"{self.role}/skipped_updates": skipped,
            f"{self.role}/lr": results[0]["lr"],
            f"{self.role}/optimizer_steps": float(steps),
        })
        return metrics

    def compute_gradients(
        self, rows: TrainRows, kl_coef: float = 0.0, algorithm: dict[str, Any] | None = None
    ) -> tuple[float, dict[str, float], dict[str, Any]]:
        """Loss, the loss module's metrics (means over response tokens) and rank 0's full gradients of
        ``rows`` as one mini-batch, without an optimizer step, optionally with ``algorithm`` fields
        changed (tests)."""
        n_tok, n_seq = float(max(rows.response_tokens(), 1)), float(max(rows.active_sequences(), 1))
        refs = [w.compute_gradients.remote(s, n_tok, n_seq, kl_coef, algorithm)
                for w, s in zip(self.workers, self._shards(rows))]
        results = wait(refs, self.timeout_s, "learner compute_gradients")
        sums: dict[str, float] = {}
        for part, _ in results:
            _add_sums(sums, part)
        return (sum(part.get("part/loss", 0.0) for part, _ in results), {k: v / n_tok for k, v in sums.items()},
                results[0][1])

    def compute_values(self, rows: TrainRows) -> list[list[float]]:
        """Critic values per response token (only for a group of `CriticWorker` ranks)."""
        return self._per_row(rows, "compute_values", f"{self.role} values")

    def weight_manifest(self) -> list[tuple[str, int]]:
        return wait(self.workers[0].weight_manifest.remote(), self.timeout_s, "learner weight manifest")

    def export_weights(self, names: list[str], dtype: str | None = None) -> Any:
        """ObjectRef of rank 0's tensors (every rank takes part: ZeRO-3 gathers are collective)."""
        refs = [w.export_weights.remote(names, dtype) for w in self.workers]
        wait(refs[1:], self.timeout_s, "learner export_weights")
        return refs[0]

    def export_adapter(self, dtype: str | None = None) -> Any:
        """ObjectRef of rank 0's LoRA adapter (`rlvr.learner.worker.LearnerWorker.export_adapter`)."""
        refs = [w.export_adapter.remote(dtype) for w in self.workers]
        wait(refs[1:], self.timeout_s, "learner export_adapter")
        return refs[0]

    def optimizer_state_bytes(self) -> int:
        """Optimizer state held over all ranks, in bytes."""
        return sum(wait([w.optimizer_state_bytes.remote() for w in self.workers], self.timeout_s,
                        "learner optimizer state"))

    def save_state(self, path: str) -> None:
        """Every rank writes its part of a resumable checkpoint into ``path`` (a shared folder)."""
        wait([w.save_state.remote(path) for w in self.workers], self.timeout_s, f"{self.role} save checkpoint")

    def load_state(self, path: str) -> None:
        wait([w.load_state.remote(path) for w in self.workers], self.timeout_s, f"{self.role} load checkpoint")

    def save_hf(self, path: str) -> str:
        return wait([w.save_hf.remote(path) for w in self.workers], self.timeout_s, "learner save checkpoint")[0]

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)


def _add_sums(into: dict[str, float], result: dict[str, float]) -> None:
    """Add a rank's metric sums over response tokens (its ``sum/<name>`` entries) into ``into[<name>]``."""
    for key, value in result.items():
        if key.startswith("sum/"):
            into[key[4:]] = into.get(key[4:], 0.0) + value
