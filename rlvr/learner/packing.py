"""Packed micro-batches and token-balanced assignment: the learner computes on tokens, not on padding.

Packing: a micro-batch's sequences go end to end in a row, with position ids that restart at 0 for each
(one row for a variable-length kernel; rows as long as the longest sequence for a dense mask, see `pack`).
With no attention mask and no KV cache, transformers builds the attention from those restarts, so no
token attends across a sequence boundary: a dense block-diagonal causal mask for ``sdpa`` / ``eager``,
``cu_seqlens`` for flash-attention's variable-length kernel. Only the per-token log-probs (and entropies)
go back into the padded ``[B, T]`` layout the loss modules read, so every loss, aggregation and metric is
computed exactly as on padded rows.

Which kernel, per hardware: on CPU, ``sdpa`` with the dense block mask over rows as long as the longest
sequence: exact, and each row costs what one padded row costs, with far fewer rows. On CUDA a dense block
mask over a whole 16K-token row was measured 2x slower than padded rows on an H200 (issue 14), so packing
there needs flash-attention's variable-length kernel (one row); without it the learner keeps padded rows
and says why (`packing_choice`).

Balance: sequences are spread over data-parallel ranks by tokens (longest first to the lightest rank),
and packed into micro-batches first-fit-decreasing under ``learner.micro_batch_tokens``, so the largest
load, which every rank waits for, is as small as the heuristic finds. Loss normalisers stay global over
the mini-batch, so where a sequence lands does not change the update.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch

VARLEN_KERNELS = ("flash_attention_2", "flash_attention_3")
"""transformers attention implementations that run packed rows as separate sequences (``cu_seqlens``)."""


def packing_choice(requested: bool, device_type: str, attn_implementation: str | None) -> tuple[bool, str]:
    """(pack?, why) for ``learner.packing`` on this device with this attention implementation."""
    if not requested:
        return False, "padded rows (learner.packing=false)"
    if device_type != "cuda":
        return True, (f"packed rows as long as the longest sequence ({attn_implementation or 'sdpa'}, block-diagonal "
                      "causal mask)")
    if attn_implementation in VARLEN_KERNELS:
        return True, f"packed into one row ({attn_implementation} variable-length kernel)"
    return False, (f"padded rows: packing on CUDA needs flash-attention's variable-length kernel, and the model "
                   f"runs {attn_implementation!r} (a dense block mask is slower than padding on GPU); install "
                   "flash-attn to pack")


@dataclass
class PackedRow:
    """One micro-batch as packed rows, and where its per-target values go in the padded layout."""

    input_ids: torch.Tensor  # [R, W]: sequences end to end, each row's tail (if any) one padding segment
    position_ids: torch.Tensor  # [R, W]: 0.. per sequence (and per padding tail)
    index: torch.Tensor  # [B, T] long: flat [R * (W - 1)] target position of padded target (b, t); 0 if not valid
    valid: torch.Tensor  # [B, T] bool: t < len_b - 1

    def unpack(self, values: torch.Tensor) -> torch.Tensor:
        """Per packed target ``[R, W - 1]`` (position j of a row scores its token j + 1) -> ``[B, T]``, 0 where
        not valid. Differentiable: gradients flow back to the packed values."""
        flat = values.reshape(-1)
        return torch.where(self.valid, flat[self.index], torch.zeros((), dtype=flat.dtype, device=flat.device))


def pack(sequences: list[list[int]], pad_id: int, device: torch.device, row_tokens: int | None) -> PackedRow:
    """Pack ``sequences`` into one row (``row_tokens`` None: for a variable-length kernel, whose cost is
    linear in the row) or into rows of ``row_tokens``, filled first-fit-decreasing (for a dense block mask,
    whose cost grows with the square of a row: rows as long as the longest sequence each cost what one padded
    row would, and there are far fewer of them). A row's unfilled tail is padding, given its own restarting
    positions so that it is a segment of its own: no mask is needed and no real token attends to it."""
    lengths = [len(s) for s in sequences]
    rows = [list(range(len(sequences)))] if row_tokens is None else packed_bins(lengths, row_tokens)
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    T = max(lengths) - 1
    index = torch.zeros((len(sequences), T), dtype=torch.long)
    valid = torch.zeros((len(sequences), T), dtype=torch.bool)
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            n = lengths[i]
            ids[r, offset:offset + n] = torch.tensor(sequences[i], dtype=torch.long)
            pos[r, offset:offset + n] = torch.arange(n)
            index[i, : n - 1] = r * (width - 1) + offset + torch.arange(n - 1)
            valid[i, : n - 1] = True
            offset += n
        pos[r, offset:] = torch.arange(width - offset)
    return PackedRow(ids.to(device), pos.to(device), index.to(device), valid.to(device))


def packed_micro_batches(lengths: list[int], budget: int, one_row: bool) -> tuple[list[list[int]], int | None]:
    """Micro-batches (row indices) and the packed row length (None: one row per micro-batch).

    One row (variable-length kernel): first-fit-decreasing into micro-batches of at most ``budget`` tokens.
    Rows as long as the longest sequence (dense mask): all sequences first-fit-decreasing into such rows,
    long and short ones together so that rows fill up, then as many whole rows per micro-batch as
    ``budget`` positions hold."""
    if not lengths:
        return [], None
    if one_row:
        return packed_bins(lengths, budget), None
    width = max(lengths)
    rows = packed_bins(lengths, width)
    per_batch = max(1, budget // width)
    return [sorted(i for row in rows[k:k + per_batch] for i in row) for k in range(0, len(rows), per_batch)], width


def group_mini_batches(group_sizes: list[int], mini_batches: int) -> list[list[int]]:
    """Row indices of each mini-batch: ``mini_batches`` runs of whole groups, ``len(group_sizes) /
    mini_batches`` groups each, in order (rows are group-major, so each is a contiguous range). Groups may
    differ in size (``rollout.extra_samples``), so mini-batches may differ in rows; cutting at group
    boundaries keeps every group-normalised quantity of a group inside one optimizer step."""
    if mini_batches < 1 or any(g < 1 for g in group_sizes):
        raise ValueError(f"mini-batches of whole groups need mini_batches >= 1 and non-empty groups, got "
                         f"{mini_batches} and group sizes {group_sizes}")
    if len(group_sizes) % mini_batches:
        raise ValueError(f"{len(group_sizes)} groups cannot be cut into {mini_batches} mini-batches of whole "
                         "groups, equally many each")
    per = len(group_sizes) // mini_batches
    out, start = [], 0
    for m in range(mini_batches):
        rows = sum(group_sizes[m * per : (m + 1) * per])
        out.append(list(range(start, start + rows)))
        start += rows
    return out


def balanced_partition(lengths: list[int], parts: int) -> list[list[int]]:
    """Indices split into ``parts`` groups with token sums as even as longest-first greedy makes them (each
    next-longest sequence to the lightest group; ties to the lower group). Each group's indices ascend, and
    no group is empty while there are at least ``parts`` sequences."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    heap = [(0, 0, p) for p in range(parts)]  # (tokens, sequences, part)
    groups: list[list[int]] = [[] for _ in range(parts)]
    for i in order:
        tokens, count, p = heapq.heappop(heap)
        groups[p].append(i)
        heapq.heappush(heap, (tokens + lengths[i], count + 1, p))
    return [sorted(g) for g in groups]


def packed_bins(lengths: list[int], budget: int) -> list[list[int]]:
    """First-fit-decreasing: micro-batches whose summed length stays within ``budget`` tokens (a sequence
    longer than the budget gets one of its own). Each bin's indices ascend; bins come heaviest first."""
    bins: list[tuple[int, list[int]]] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for k, (used, members) in enumerate(bins):
            if used + lengths[i] <= budget:
                bins[k] = (used + lengths[i], members + [i])
                break
        else:
            bins.append((lengths[i], [i]))
    return [sorted(members) for _, members in bins]


def padded_bins(lengths: list[int], budget: int) -> list[list[int]]:
    """Padded micro-batches (``rows x longest`` within ``budget``) over the sequences sorted by length, so
    rows of similar length share a micro-batch and little of it is padding."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    cur: list[int] = []
    for i in order:  # longest first: the first row of a bin is its longest
        if cur and (len(cur) + 1) * lengths[cur[0]] > budget:
            bins.append(sorted(cur))
            cur = []
        cur.append(i)
    if cur:
        bins.append(sorted(cur))
    return bins
