"""Micro-batching, target-space alignment and sync bucket planning."""

from __future__ import annotations

import torch

from rlvr.learner.batch import TrainRows, collate, token_budget_chunks, unscatter
from rlvr.weight_sync import plan_buckets


def test_token_budget_chunks_respect_budget_and_order() -> None:
    lengths = [5, 5, 9, 3, 12, 2]
    chunks = token_budget_chunks(lengths, budget=16)
    assert [i for c in chunks for i in c] == list(range(6))
    for c in chunks:
        assert len(c) * max(lengths[i] for i in c) <= 16 or len(c) == 1
    assert token_budget_chunks(lengths, budget=1000) == [list(range(6))]


def test_collate_aligns_response_tokens_in_target_space() -> None:
    rows = TrainRows(
        input_ids=[[10, 11, 12, 20, 21], [10, 11, 30]],
        prompt_lens=[3, 2],
        advantages=[[1.5, 1.25], [-2.0]],
        sampler_logprobs=[[-0.1, -0.2], [-0.3]],
        row_values={"r_hat": [0.25, 0.5]},
    )
    mb = collate(rows, pad_id=0, device=torch.device("cpu"))
    # target t is token t+1: row 0 responses 20, 21 sit at targets 2, 3; row 1's 30 at target 1
    assert mb.targets.tolist() == [[11, 12, 20, 21], [11, 30, 0, 0]]
    assert mb.mask.tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]
    assert mb.advantages.tolist() == [[0, 0, 1.5, 1.25], [0, -2.0, 0, 0]]
    assert mb.row_values["r_hat"].tolist() == [0.25, 0.5]
    assert torch.allclose(mb.sampler_logprobs, torch.tensor([[0, 0, -0.1, -0.2], [0, -0.3, 0, 0]]))
    assert mb.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    back = unscatter(mb.sampler_logprobs, rows)
    assert [[round(x, 5) for x in r] for r in back] == [[-0.1, -0.2], [-0.3]]


def test_inactive_rows_are_masked_out_of_the_loss() -> None:
    rows = TrainRows(input_ids=[[1, 2, 3], [1, 2, 4, 5]], prompt_lens=[2, 2], active=[True, False])
    mb = collate(rows, pad_id=0, device=torch.device("cpu"))
    assert mb.mask.tolist() == [[0, 1, 0], [0, 0, 0]]
    assert rows.response_tokens() == 1 and rows.active_sequences() == 1
    sub = rows.select([1])
    assert sub.active == [False] and sub.response_tokens() == 0


def test_plan_buckets() -> None:
    manifest = [("a", 40), ("b", 40), ("c", 100), ("d", 10)]
    assert plan_buckets(manifest, 80) == [["a", "b"], ["c"], ["d"]]
    assert plan_buckets(manifest, 1 << 30) == [["a", "b", "c", "d"]]


def test_shard_ranges_cover_evenly() -> None:
    from rlvr.remote import shard_ranges

    assert [list(r) for r in shard_ranges(7, 3)] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [len(r) for r in shard_ranges(2, 4)] == [1, 1, 0, 0]
    assert [list(r) for r in shard_ranges(8, 2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
