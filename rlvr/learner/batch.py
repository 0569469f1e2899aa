"""Turning a list of samples into padded micro-batches in target space.

A training row is ``prompt + response`` token ids; per-response quantities (advantage, sampler,
old and reference log-probs) are aligned so that target position ``t`` (the log-prob of token
``t + 1``) lines up with the response token it scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from rlvr.learner.packing import PackedRow


@dataclass
class TrainRows:
    """What the driver sends a learner rank: one entry per sample."""

    input_ids: list[list[int]]  # prompt + response
    prompt_lens: list[int]
    advantages: list[list[float]] | None = None  # per response token
    old_logprobs: list[list[float]] | None = None  # per response token
    ref_logprobs: list[list[float]] | None = None
    sampler_logprobs: list[list[float]] | None = None
    row_values: dict[str, list[float]] = field(default_factory=dict)  # per-sample extras (NFT: r_hat, correct)
    token_values: dict[str, list[list[float]]] = field(default_factory=dict)  # per-token extras (Clip-/KL-Cov)
    values: list[list[float]] | None = None  # critic's pre-update values per response token (PPO)
    returns: list[list[float]] | None = None  # value targets per response token (PPO)
    active: list[bool] | None = None  # False: masked out of the loss (overlong filtering)

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, idx: list[int]) -> TrainRows:
        def pick(xs: list[Any] | None) -> list[Any] | None:
            return None if xs is None else [xs[i] for i in idx]

        return TrainRows(
            input_ids=[self.input_ids[i] for i in idx],
            prompt_lens=[self.prompt_lens[i] for i in idx],
            advantages=pick(self.advantages),
            old_logprobs=pick(self.old_logprobs),
            ref_logprobs=pick(self.ref_logprobs),
            sampler_logprobs=pick(self.sampler_logprobs),
            row_values={k: [v[i] for i in idx] for k, v in self.row_values.items()},
            token_values={k: [v[i] for i in idx] for k, v in self.token_values.items()},
            values=pick(self.values),
            returns=pick(self.returns),
            active=pick(self.active),
        )

    def is_active(self, i: int) -> bool:
        return self.active is None or self.active[i]

    def response_tokens(self) -> int:
        """Response tokens that count in the loss (the token-mean normaliser)."""
        pairs = enumerate(zip(self.input_ids, self.prompt_lens))
        return sum(len(ids) - p for i, (ids, p) in pairs if self.is_active(i))

    def active_sequences(self) -> int:
        """Rows with at least one response token that counts (the seq-mean normaliser; `AggNorm.of`)."""
        pairs = enumerate(zip(self.input_ids, self.prompt_lens))
        return sum(self.is_active(i) and len(ids) > p for i, (ids, p) in pairs)

    def num_tokens(self) -> int:
        """Prompt + response tokens of every row (throughput)."""
        return sum(len(ids) for ids in self.input_ids)


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [B, L] right-padded
    attention_mask: torch.Tensor  # [B, L]
    targets: torch.Tensor  # [B, T] T = L - 1, token t+1
    mask: torch.Tensor  # [B, T] 1.0 where the target is a response token
    advantages: torch.Tensor | None  # [B, T]
    old_logprobs: torch.Tensor | None  # [B, T]
    ref_logprobs: torch.Tensor | None  # [B, T]
    sampler_logprobs: torch.Tensor | None  # [B, T]
    row_values: dict[str, torch.Tensor]  # [B] each
    token_values: dict[str, torch.Tensor]  # [B, T] each
    values: torch.Tensor | None  # [B, T]
    returns: torch.Tensor | None  # [B, T]
    packed: PackedRow | None = None  # the same rows as packed rows (rlvr.learner.packing), when packing


def _scatter(values: list[list[float]] | None, rows: TrainRows, shape: tuple[int, int]) -> torch.Tensor | None:
    if values is None:
        return None
    out = torch.zeros(shape)
    for b, (vals, plen) in enumerate(zip(values, rows.prompt_lens)):
        if vals:
            out[b, plen - 1 : plen - 1 + len(vals)] = torch.tensor(vals)
    return out


def collate(rows: TrainRows, pad_id: int, device: torch.device) -> MicroBatch:
    lengths = [len(ids) for ids in rows.input_ids]
    B, L = len(rows), max(lengths)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    mask = torch.zeros((B, L - 1))
    for b, (seq, plen) in enumerate(zip(rows.input_ids, rows.prompt_lens)):
        ids[b, : len(seq)] = torch.tensor(seq)
        attn[b, : len(seq)] = 1
        if rows.is_active(b):
            mask[b, plen - 1 : len(seq) - 1] = 1.0
    shape = (B, L - 1)
    mb = MicroBatch(
        input_ids=ids,
        attention_mask=attn,
        targets=ids[:, 1:],
        mask=mask,
        advantages=_scatter(rows.advantages, rows, shape),
        old_logprobs=_scatter(rows.old_logprobs, rows, shape),
        ref_logprobs=_scatter(rows.ref_logprobs, rows, shape),
        sampler_logprobs=_scatter(rows.sampler_logprobs, rows, shape),
        row_values={k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in rows.row_values.items()},
        token_values={k: _scatter(v, rows, shape).to(device) for k, v in rows.token_values.items()},
        values=_scatter(rows.values, rows, shape),
        returns=_scatter(rows.returns, rows, shape),
    )
    for name, value in vars(mb).items():
        if isinstance(value, torch.Tensor):
            setattr(mb, name, value.to(device))
    return mb


def unscatter(values: torch.Tensor, rows: TrainRows) -> list[list[float]]:
    """``[B, T]`` target-space values -> per-row response lists (inverse of `_scatter`)."""
    out = []
    for b, (seq, plen) in enumerate(zip(rows.input_ids, rows.prompt_lens)):
        out.append(values[b, plen - 1 : len(seq) - 1].tolist())
    return out
