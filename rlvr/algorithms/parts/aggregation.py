"""Loss aggregation: per-token losses ``[B, T]`` -> this micro-batch's share of the mini-batch loss.

Every mode is a masked sum divided by a normaliser that is fixed for the whole mini-batch (`AggNorm`:
totals over all micro-batches and all data-parallel ranks, or a constant). Summing `aggregate` over
the micro-batches of a mini-batch (gradient accumulation, then the data-parallel all-reduce *sum*)
therefore gives exactly the loss and gradient of aggregating the whole mini-batch at once, however
it is split. Frameworks that normalise per micro-batch (early verl ``masked_mean``, SimpleRL-Zoo,
Tulu 3's legacy trainer) differ from this when micro-batches hold different token counts.

Modes (``ℓ`` the per-token loss, ``m`` the mask, ``|o_i| = Σ_t m_{i,t}``, sums over the mini-batch):

==========================  ==========================================================  =================
mode                        value                                                       reference
==========================  ==========================================================  =================
``token-mean``              ``Σ_{i,t} ℓ / num_tokens``                                  verl, DAPO
``seq-mean-token-mean``     ``Σ_i (Σ_t ℓ / |o_i|) / num_sequences``                      GRPO paper, verl
``seq-mean-token-sum``      ``Σ_i Σ_t ℓ / num_sequences``                                verl
``seq-mean-token-sum-norm`` ``Σ_i (Σ_t ℓ / C) / num_sequences``                          Dr. GRPO (oat)
``token-sum-constant``      ``Σ_{i,t} ℓ / C``                                            NFT (C = 1000)
==========================  ==========================================================  =================

``seq-mean-token-sum-norm`` (Dr. GRPO, arXiv 2503.20783 §3; ALGORITHMS.md §4): rlvr implements what
oat does (``sail-sg/oat`` ``masked_sum(..., constant_normalizer=generate_max_length)`` then the mean
over sequences) and what current verl does (``agg_loss`` divides each sequence's token sum by
``loss_scale_factor`` and then by the global batch size): *each sequence's token sum divided by the
constant C, then the mean over sequences*. Older verl (``agg_loss`` up to mid-2025) computes
``Σ_i Σ_t ℓ / loss_mask.shape[-1]``: a *sum* over sequences (no ``1/num_sequences``) divided by the
padded response length of the micro-batch, i.e. ``num_sequences × `` rlvr's value when C equals that
padded length. C is `AggNorm.constant` (Dr. GRPO: the generation budget, e.g. 3000).

``token-sum-constant`` is NVlabs/NFT's ``dp_actor.py`` reduction: ``Σ_t ℓ·m / 1000`` per sequence,
summed over the micro-batch, with no further division (``use_dynamic_bsz`` and
``bugged_dynamic_scale=0``) and gradients accumulated over micro-batches.

The mask is read as a boolean (``mask > 0``). Masked positions are excluded with ``torch.where``, so
inf/NaN garbage there changes neither the value nor the gradient (the gradient reaching masked
positions is exactly zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["AGG_MODES", "AggMode", "AggNorm", "aggregate", "masked_sum"]

AggMode = Literal[
    "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-sum-constant"
]
AGG_MODES: tuple[str, ...] = (
    "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-sum-constant",
)
_NEEDS_CONSTANT = ("seq-mean-token-sum-norm", "token-sum-constant")


@dataclass(frozen=True)
class AggNorm:
    """Mini-batch-wide normalisers for `aggregate`.

    ``num_tokens`` and ``num_sequences`` are totals over the *whole mini-batch*: every micro-batch
    on every data-parallel rank (the learner all-reduces them before the first micro-batch).
    ``constant`` is the fixed ``C`` of ``seq-mean-token-sum-norm`` and ``token-sum-constant``.
    """

    num_tokens: float  # Σ_i |o_i| over the mini-batch
    num_sequences: float  # rows with at least one response token that counts (fully masked rows excluded)
    constant: float | None = None

    @classmethod
    def of(cls, mask: torch.Tensor, constant: float | None = None) -> AggNorm:
        """Totals of one ``[B, T]`` mask: the norm for aggregating that batch in one piece.

        ``num_sequences`` counts the rows with at least one unmasked token, as verl's ``agg_loss`` does in its
        seq-mean modes (``seq_mask = (loss_mask.sum(-1) > 0)``, "exclude fully masked sequences"): a row
        masked out entirely (overlong filtering, an empty response) adds nothing to the numerator and so
        must not dilute the mean either. The learner's `rlvr.learner.batch.TrainRows.active_sequences`
        counts the same rows.
        """
        valid = mask > 0  # [B, T]
        return cls(num_tokens=float(valid.sum()), num_sequences=float(valid.any(dim=-1).sum()), constant=constant)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``Σ values`` over ``mask > 0``; garbage (inf/NaN) under the mask neither leaks nor gets a NaN gradient."""
    kept = torch.where(mask > 0, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return kept.sum() if dim is None else kept.sum(dim)


def _divide(total: torch.Tensor, denominator: float, name: str, valid: torch.Tensor) -> torch.Tensor:
    if denominator > 0:
        return total / denominator
    if bool(valid.any()):
        raise ValueError(f"AggNorm.{name} is {denominator} but this micro-batch has response tokens")
    return total * 0.0  # an all-masked mini-batch: zero loss, zero gradient


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, norm: AggNorm) -> torch.Tensor:
    """Reduce ``per_token [B, T]`` to this micro-batch's share of the mini-batch loss (a scalar).

    See the module docstring for each mode's formula and reference. ``norm`` holds mini-batch totals
    (`AggNorm`), so the sum over micro-batches equals aggregating the whole mini-batch.
    """
    if mode not in AGG_MODES:
        raise ValueError(f"unknown loss aggregation {mode!r}; valid: {', '.join(AGG_MODES)}")
    if per_token.shape != mask.shape or per_token.dim() != 2:
        raise ValueError(f"per_token {tuple(per_token.shape)} and mask {tuple(mask.shape)} must both be [B, T]")
    constant = norm.constant
    if mode in _NEEDS_CONSTANT and (constant is None or constant <= 0):
        raise ValueError(f"loss aggregation {mode!r} needs a positive AggNorm.constant, got {constant!r}")
    valid = mask > 0  # [B, T]
    row_sum = masked_sum(per_token, mask, dim=-1)  # [B]
    if mode == "token-mean":
        return _divide(row_sum.sum(), float(norm.num_tokens), "num_tokens", valid)
    if mode == "token-sum-constant":
        return row_sum.sum() / constant
    if mode == "seq-mean-token-mean":
        lengths = valid.sum(-1).clamp(min=1).to(per_token.dtype)  # [B]; empty rows contribute 0
        per_seq = row_sum / lengths  # [B]
    elif mode == "seq-mean-token-sum":
        per_seq = row_sum  # [B]
    else:  # seq-mean-token-sum-norm
        per_seq = row_sum / constant  # [B]
    return _divide(per_seq.sum(), float(norm.num_sequences), "num_sequences", valid)
