"""The critic role for PPO: a Ray actor owning a DeepSpeed value model (one data-parallel rank).

The value model is the policy's architecture with a one-output token head
(``AutoModelForTokenClassification``, dropout off), initialised from the policy checkpoint with a
fresh head: RLVR has no reward model to start it from. Values live in target space like log-probs:
``V[:, t]`` is the value of the state before response token ``t + 1``. The loss is PPO's clipped
value loss (Schulman et al. 2017; ALGORITHMS.md §7.4):
``0.5 * max((V - Ret)^2, (clip(V, V_old - eps_v, V_old + eps_v) - Ret)^2)``, reduced over the mini-batch by
``algorithm.value_loss_agg`` (token-mean by default, as verl's ``critic.loss_agg_mode``; the per-sequence modes
weigh each response equally, however long) with global normalisers like the policy loss
(`rlvr.algorithms.parts.aggregation`).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from rlvr.algorithms.parts.aggregation import AggNorm, aggregate
from rlvr.learner.batch import MicroBatch, TrainRows, unscatter
from rlvr.learner.memory import releases_cuda_cache
from rlvr.learner.worker import LearnerWorker


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped value loss ``[B, T]`` and where the clipped branch was taken."""
    unclipped = (values - returns).square()  # [B, T]
    if clip is None:
        return 0.5 * unclipped, torch.zeros_like(mask, dtype=torch.bool)
    clipped_v = old_values + (values - old_values).clamp(-clip, clip)
    clipped = (clipped_v - returns).square()
    return 0.5 * torch.maximum(unclipped, clipped), (clipped > unclipped) & (mask > 0)


class CriticWorker(LearnerWorker):
    """Reuses the learner's rank set-up, micro-batching and checkpoint plumbing; swaps the model
    (value head) and the loss (clipped value regression)."""

    def setup(self) -> dict[str, Any]:
        from transformers import AutoConfig, AutoModelForTokenClassification

        from rlvr.learner.deepspeed_config import critic_config, critic_schedule

        cfg, load = self.cfg, self._init_rank()
        config = AutoConfig.from_pretrained(cfg.model.source, **load)
        config.num_labels, config.classifier_dropout = 1, 0.0  # one value per token, deterministic head
        model = AutoModelForTokenClassification.from_pretrained(
            cfg.model.source, config=config, dtype=self.master_dtype, **load
        )
        self._batching(model)
        self.chunk_tokens = 0  # one output per token: nothing to chunk
        self._initialize(model, critic_config(cfg, self.world_size), critic_schedule(cfg).builder())
        self._check_packing(self._values)
        return {"params": sum(p.numel() for p in model.parameters()), **self.ready()}

    def _values(self, mb: MicroBatch) -> torch.Tensor:
        p = mb.packed
        if p is not None:  # packed rows, values back in the padded layout
            out = self.engine(input_ids=p.input_ids, position_ids=p.position_ids, use_cache=False).logits  # [R, W, 1]
            values = p.unpack(out[:, :-1, 0])
        else:
            out = self.engine(input_ids=mb.input_ids, attention_mask=mb.attention_mask, use_cache=False).logits
            values = out[:, :-1, 0]  # [B, T]
        return values.to(torch.promote_types(values.dtype, torch.float32))

    @releases_cuda_cache
    @torch.no_grad()
    def compute_values(self, rows: TrainRows) -> list[list[float]]:
        self.engine.eval()
        out: list[list[float]] = [[] for _ in range(len(rows))]
        for idx in self._chunks(rows):
            sub, mb, empty = self._micro(rows, idx)
            values = self._values(mb)
            if not empty:
                for i, vals in zip(idx, unscatter(values, sub)):
                    out[i] = vals
        return out

    @releases_cuda_cache
    def train_step(
        self, rows: TrainRows, num_tokens: float, num_sequences: float, kl_coef: float = 0.0
    ) -> dict[str, float]:
        """One critic optimizer step; ``rows.returns`` are the targets, ``rows.old_logprobs`` slot
        is not used: the pre-update values travel in ``rows.values``."""
        start = time.perf_counter()
        self.engine.train()
        a = self.cfg.algorithm
        clip, coef = a.value_clip, a.value_loss_coef
        constant = a.loss_agg_constant or float(self.cfg.rollout.max_new_tokens)  # seq-mean-token-sum-norm's C
        norm = AggNorm(num_tokens=num_tokens, num_sequences=num_sequences, constant=constant)
        sums = {"critic/vf_loss": 0.0, "critic/vf_clipfrac": 0.0, "critic/values": 0.0}
        chunks, total = self._chunks(rows), 0.0
        for k, idx in enumerate(chunks):
            _, mb, empty = self._micro(rows, idx)
            self.engine.set_gradient_accumulation_boundary(k == len(chunks) - 1)
            values = self._values(mb)
            per_token, clipped = clipped_value_loss(values, mb.values, mb.returns, mb.mask, clip)
            # weighted before the gradient clip (verl's vf_coef); critic/vf_loss is logged unweighted
            reduced = aggregate(per_token, mb.mask, a.value_loss_agg, norm)  # this micro-batch's share
            loss = coef * reduced
            self.engine.backward(loss * self.world_size)
            if not empty:
                total += float(reduced.detach())
                sums["critic/vf_loss"] += float(torch.where(mb.mask > 0, per_token, 0.0).sum())
                sums["critic/vf_clipfrac"] += float(clipped.sum())
                sums["critic/values"] += float(torch.where(mb.mask > 0, values, 0.0).sum())
        lr = float(self.engine.get_lr()[0])  # the rate this update uses
        skipped = 0.0 if self._optimizer_step() else 1.0
        result = {f"sum/{k}": v for k, v in sums.items()}
        result["part/loss"] = total  # the value loss as value_loss_agg reduces it (before value_loss_coef)
        result["skipped"] = skipped
        result["grad_norm"] = self._grad_norm(skipped)
        result["lr"] = lr
        result["time/update_rank"] = time.perf_counter() - start
        return result
