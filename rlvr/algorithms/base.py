"""The loss-module contract.

Two halves, matching where they run:

* ``advantages(AdvantageInput) -> AdvantageOutput`` runs on the driver over the whole rollout batch
  (group statistics and batch whitening need all of it). Tensors are in *response space*:
  ``[N, T]`` with row i the response of sample i left-aligned, ``mask`` marking its tokens.
* ``loss(LossInput, AggNorm) -> (loss, metric sums)`` runs on each learner rank per micro-batch.
  Tensors are in *target space*: position t holds the log-prob of token t+1, so a padded batch of
  length L gives ``[B, L-1]``. The normaliser in `AggNorm` covers the whole mini-batch (all
  micro-batches, all data-parallel ranks), so the update does not depend on how it is split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from rlvr.algorithms.parts.aggregation import AggNorm

__all__ = ["AdvantageInput", "AdvantageOutput", "AggNorm", "Algorithm", "LossInput", "wants_greedy"]


@dataclass
class AdvantageInput:
    rewards: torch.Tensor  # [N] scalar (shaped) reward per sample, group-major
    group_size: int  # rollout.n: the size of every group unless group_ids says otherwise
    mask: torch.Tensor  # [N, T] response tokens
    kl: torch.Tensor | None = None  # [N, T] per-token KL estimate to the reference (KL-in-reward)
    kl_coef: float = 0.0
    values: torch.Tensor | None = None  # [N, T] critic values V(s_t) before each response token (PPO)
    correct: torch.Tensor | None = None  # [N] the verifiers' correctness flags (NFT's c_i and r_hat)
    group_ids: torch.Tensor | None = None  # [N] the prompt (group) of each sample; groups may differ in size
    baseline: torch.Tensor | None = None  # [N] the greedy response's reward for each sample's prompt (ReMax)
    reward_terms: dict[str, torch.Tensor] = field(default_factory=dict)  # [N] per term of a composed reward (GDPO)
    logprobs: torch.Tensor | None = None  # [N, T] detached log-probs of the sampled tokens (Clip-/KL-Cov)
    seed: int = 0  # seeds the random choices of this batch (Clip-Cov), so a resumed run repeats them

    @property
    def groups(self) -> int | torch.Tensor:
        """What the group estimators take: each sample's group id, or the common group size."""
        return self.group_ids if self.group_ids is not None else self.group_size


@dataclass
class AdvantageOutput:
    advantages: torch.Tensor  # [N, T] per-token advantage (zero where mask is 0)
    row_values: dict[str, torch.Tensor] = field(default_factory=dict)  # [N] per-sample extras (NFT: r_hat, correct)
    token_values: dict[str, torch.Tensor] = field(default_factory=dict)  # [N, T] per-token extras (Clip-/KL-Cov)
    metrics: dict[str, float] = field(default_factory=dict)
    returns: torch.Tensor | None = None  # [N, T] value targets (PPO)


@dataclass
class LossInput:
    """One micro-batch, as the learner hands it to a loss module."""

    logprobs: torch.Tensor  # [B, T] current policy, with grad
    old_logprobs: torch.Tensor  # [B, T] the policy the ratio is taken against (detached)
    advantages: torch.Tensor  # [B, T]
    mask: torch.Tensor  # [B, T] 1.0 on response tokens that count in the loss
    ref_logprobs: torch.Tensor | None = None  # [B, T] frozen reference (KL in the loss)
    sampler_logprobs: torch.Tensor | None = None  # [B, T] vLLM's log-probs of the sampled tokens
    entropy: torch.Tensor | None = None  # [B, T] policy entropy (with grad when a bonus is used)
    row_values: dict[str, torch.Tensor] = field(default_factory=dict)  # [B] per-sample extras
    token_values: dict[str, torch.Tensor] = field(default_factory=dict)  # [B, T] per-token extras


class Algorithm(Protocol):
    """A loss module: advantages from rewards on the driver, then (loss, metric sums) per micro-batch."""

    needs_reference: bool  # a frozen reference model must score the rollouts
    needs_old_logprobs: bool  # the learner must score the rollouts before any update
    needs_critic: bool  # a value model must score the rollouts (GAE) and is trained on the returns
    # (optional, False when absent) one greedy response per prompt is generated and scored with each
    # step's rollouts, its reward handed to `advantages` as ``AdvantageInput.baseline`` (ReMax)
    needs_greedy: bool
    agg_constant: float | None  # the constant of constant-normalised aggregation modes
    kl_coef: float  # KL coefficient for this step (the driver's controller sets it)

    def advantages(self, inp: AdvantageInput) -> AdvantageOutput: ...

    def loss(self, batch: LossInput, norm: AggNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss for this micro-batch (its share of the mini-batch loss) and metric *sums over
        response tokens* (the learner divides by the mini-batch token count)."""
        ...


def wants_greedy(algorithm: object) -> bool:
    """Does this loss module need the greedy baseline sample? (A custom module may leave ``needs_greedy`` out.)"""
    return bool(getattr(algorithm, "needs_greedy", False))
