"""PPO's clipped surrogate, with decoupled bounds and dual-clip.

Per token (Schulman et al., arXiv 1707.06347 eq. 7; clip-higher: DAPO, arXiv 2503.14476 §3.1;
dual-clip: Ye et al., arXiv 1912.09729, as verl ``compute_policy_loss_vanilla``):

    l1 = -A·r,   l2 = -A·clip(r, 1 - clip_low, 1 + clip_high),   l = max(l1, l2)      (= -min(rA, clip(r)A))
    dual-clip, A < 0 only:   l = min(l, -A·c)                                          (c = dual_clip > 1)

Which tokens count as clipped (three disjoint boolean masks, ``[B, T]``):

* ``clipped_high``: ``l2 > l1`` with ``A > 0``, equivalently ``r > 1 + clip_high``: the upper bound
  removed the gradient.
* ``clipped_low``: ``l2 > l1`` with ``A < 0``, equivalently ``r < 1 - clip_low``.
* ``dual_clipped``: ``A < 0`` and ``max(l1, l2) > -A·c``, equivalently ``r > c``: the dual-clip cap
  removed the gradient. Always False without ``dual_clip``.

Comparing with verl: ``pg_clipfrac`` is the masked mean of ``clipped_low | clipped_high`` (verl counts
``l2 > l1``), and verl's ``pg_clipfrac_lower`` is the masked mean of ``dual_clipped``. verl's "lower"
is *not* ``clipped_low``. Tokens at ``A = 0`` and ties (``l1 == l2``) are never counted as clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ClipResult", "ppo_clip"]


@dataclass
class ClipResult:
    loss: torch.Tensor  # [B, T] per-token loss to minimise
    clipped_low: torch.Tensor  # [B, T] bool: A < 0 and r < 1 - clip_low
    clipped_high: torch.Tensor  # [B, T] bool: A > 0 and r > 1 + clip_high
    dual_clipped: torch.Tensor  # [B, T] bool: A < 0 and r > dual_clip (verl pg_clipfrac_lower)


def ppo_clip(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
    mask: torch.Tensor | None = None,
) -> ClipResult:
    """Per-token PPO-clip loss ``-min(rA, clip(r, 1-clip_low, 1+clip_high)A)``, dual-clipped for ``A < 0``
    when ``dual_clip`` (verl ``clip_ratio_c``, must be > 1) is set. ``ratio``, ``advantages``: ``[B, T]``.

    Computed exactly as verl ``compute_policy_loss_vanilla`` (``torch.maximum`` / ``torch.min`` /
    ``torch.where``, so ties split the gradient the same way). With ``mask``, masked positions are
    neutralised first (``r = 1, A = 0``, via ``torch.where``), so garbage there yields loss 0, no clip
    flags and zero gradient; without it, garbage flows into those positions of ``loss`` (the
    aggregation still ignores them, but an upstream NaN gradient is possible).
    """
    if clip_low < 0.0 or clip_high < 0.0:  # clip_low >= 1 leaves no lower bound (ratios are positive)
        raise ValueError(f"clip_low and clip_high must be >= 0, got {clip_low}, {clip_high}")
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip (verl clip_ratio_c) must be > 1, got {dual_clip}")
    valid = None
    if mask is not None:
        valid = mask > 0  # [B, T]
        ratio = torch.where(valid, ratio, torch.ones((), dtype=ratio.dtype, device=ratio.device))
        advantages = torch.where(valid, advantages, torch.zeros((), dtype=advantages.dtype, device=advantages.device))
    loss1 = -advantages * ratio  # [B, T]
    loss2 = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)  # [B, T]
    clipped_loss = torch.maximum(loss1, loss2)  # [B, T]
    hit = torch.gt(loss2, loss1)  # [B, T]
    negative = advantages < 0  # [B, T]
    clipped_low = hit & negative
    clipped_high = hit & (advantages > 0)
    if dual_clip is None:
        loss = clipped_loss
        dual_clipped = torch.zeros_like(hit)
    else:
        loss3 = -advantages * dual_clip  # [B, T]
        loss = torch.where(negative, torch.min(loss3, clipped_loss), clipped_loss)  # [B, T]
        dual_clipped = torch.gt(clipped_loss, loss3) & negative
    if valid is not None:
        loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
        clipped_low, clipped_high, dual_clipped = clipped_low & valid, clipped_high & valid, dual_clipped & valid
    return ClipResult(loss=loss, clipped_low=clipped_low, clipped_high=clipped_high, dual_clipped=dual_clipped)
