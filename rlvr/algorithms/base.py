"""The loss-module contract and the parts every algorithm shares.

Conventions: tensors are in *target space*: position ``t`` holds the log-prob of token ``t + 1``
given the tokens before it, so a batch of padded sequences of length ``L`` gives ``[B, L-1]``
tensors, and ``mask`` marks response tokens. Per-token losses are reduced with normalisers that
are global over the whole mini-batch (all micro-batches, all data-parallel ranks), passed in as
`LossNorm`, so the update does not depend on how the batch is split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

LossAgg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]


@dataclass
class LossInput:
    """One micro-batch, as the learner hands it to a loss module."""

    logprobs: torch.Tensor  # [B, T] current policy, with grad
    old_logprobs: torch.Tensor  # [B, T] policy that the ratio is taken against (detached)
    advantages: torch.Tensor  # [B, T] per-token advantages (a sequence's value broadcast)
    mask: torch.Tensor  # [B, T] 1.0 on response tokens
    ref_logprobs: torch.Tensor | None = None  # [B, T] frozen reference, when the KL term is on
    entropy: torch.Tensor | None = None  # [B, T] policy entropy (with grad when a bonus is used)


@dataclass(frozen=True)
class LossNorm:
    """Mini-batch-wide normalisers (summed over micro-batches and data-parallel ranks)."""

    num_tokens: float  # response tokens in the mini-batch
    num_sequences: float  # sequences in the mini-batch


class Algorithm(Protocol):
    """A loss module: advantages from rewards, then (loss, metric sums) per micro-batch."""

    needs_reference: bool

    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """``rewards [N]`` ordered group by group (N = prompts * group_size) -> advantages ``[N]``."""
        ...

    def loss(self, batch: LossInput, norm: LossNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss for this micro-batch (already divided by the global normaliser) and metric
        *sums over response tokens* (the learner divides by the mini-batch token count)."""
        ...


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: LossAgg, norm: LossNorm) -> torch.Tensor:
    """Reduce ``per_token [B, T]`` to this micro-batch's share of the mini-batch loss.

    token-mean: sum over all tokens / tokens in the mini-batch (DAPO's token-level loss).
    seq-mean-token-mean: mean over tokens per sequence, then / sequences in the mini-batch
    (the original GRPO, Shao et al. 2024). seq-mean-token-sum: token sum per sequence / sequences.
    """
    masked = per_token * mask  # [B, T]
    if mode == "token-mean":
        return masked.sum() / norm.num_tokens
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1.0)  # [B]
        return per_seq.sum() / norm.num_sequences
    if mode == "seq-mean-token-sum":
        return masked.sum() / norm.num_sequences
    raise ValueError(f"unknown loss aggregation {mode!r}")


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate from samples of pi (Schulman, "Approximating KL", 2020).

    With d = log pi - log pi_ref: k1 = d, k2 = d^2 / 2, k3 = exp(-d) - 1 + d (>= 0, low variance;
    clamped to [-10, 10] as verl's ``low_var_kl`` does, to keep one wild token from dominating).
    """
    d = logprobs - ref_logprobs  # [B, T]
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d.square()
    if estimator == "k3":
        return (torch.exp(-d) - 1.0 + d).clamp(-10.0, 10.0)
    raise ValueError(f"unknown KL estimator {estimator!r}; valid: k1, k2, k3")
