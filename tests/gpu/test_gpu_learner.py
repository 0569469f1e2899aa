"""GPU: the learner's update rules on CUDA, driven directly (one rank, NCCL with world size 1, no Ray or
vLLM needed, so these run on a GPU machine that has neither):

* a NaN loss skips the update under bf16 with ZeRO 0, 2 and 3 (DeepSpeed's bf16 overflow check, or rlvr's own
  without ZeRO): weights bit-identical, the skip counted, and the next finite batch trains;
* the loss and gradients do not depend on the micro-batch split, for every aggregation mode (float64
  masters on CUDA, as tests/integration/test_invariance.py does on CPU);
* weight decay and the warm-up schedule reach DeepSpeed's optimizer on CUDA (a zero-gradient update shrinks
  every weight by exactly lr_k x weight_decay);
* an all-clipped batch has no gradient;
* the learner side of the NCCL weight sync under ZeRO-3: pulled from a side stream, as vLLM's packed sender
  does on rank 0, every bucket is gathered on the default stream and arrives whole;
* a learner call gives the CUDA cache back when it ends (colocated engines need it to wake);
* packed micro-batches (with flash-attn installed; otherwise the learner must say it keeps padded rows)
  and chunked log-probs agree with padded rows and whole logits on CUDA.
"""

from __future__ import annotations

import math
import socket
from typing import Any

import pytest
import torch

from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from tests.conftest import DEFAULT_RECIPE, arith_rows, grad_rel

pytestmark = pytest.mark.gpu

AGG = [{"loss_agg": "token-mean"}, {"loss_agg": "seq-mean-token-mean"}, {"loss_agg": "seq-mean-token-sum"},
       {"loss_agg": "seq-mean-token-sum-norm"}, {"loss_agg": "token-sum-constant", "loss_agg_constant": 7.0}]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _learner(tmp: Any, *overrides: str) -> Any:
    from rlvr.learner.worker import LearnerWorker

    cfg = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp}", "algorithm.kl_placement=none", "algorithm.kl_coef=0",
                                       "rollout.prompts_per_step=2", "rollout.n=4", *overrides])
    worker = LearnerWorker(cfg, 0, 1, "127.0.0.1", _port())
    worker.setup()
    assert worker.device.type == "cuda"
    return worker


def _rows(worker: Any, advantage: float = 1.0) -> TrainRows:
    return arith_rows(worker.tokenizer, lambda k, t: advantage * (1.0 if k % 2 == 0 else -1.0))


def _train(worker: Any, rows: TrainRows) -> dict[str, float]:
    return worker.train_step(rows, float(rows.response_tokens()), float(rows.active_sequences()))


def _weights(worker: Any) -> dict[str, torch.Tensor]:
    names = [n for n, _ in worker.weight_manifest()]
    return {k: v.clone() for k, v in worker.export_weights(names).items()}


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    assert torch.cuda.is_available()


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_nan_loss_skips_the_update_under_bf16(stage: int, tmp_path: Any) -> None:
    worker = _learner(tmp_path, "model.dtype=bfloat16", f"learner.zero_stage={stage}")
    before = _weights(worker)
    bad = _train(worker, _rows(worker, float("nan")))
    assert bad["skipped"] == 1.0 and math.isfinite(bad["grad_norm"]), bad
    after = _weights(worker)
    assert all(torch.equal(before[k], after[k]) for k in before), "a skipped update changed the weights"
    good = _train(worker, _rows(worker, 1.0))
    assert good["skipped"] == 0.0 and good["grad_norm"] > 0, good
    trained = _weights(worker)
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    assert all(torch.isfinite(v.float()).all() for v in trained.values())


def test_micro_batches_do_not_change_the_update(tmp_path: Any) -> None:
    out = {}
    for budget in (8192, 22):  # 1 x 8 rows, 8 x 1 row
        worker = _learner(tmp_path, "learner.master_dtype=float64", f"learner.micro_batch_tokens={budget}")
        rows = _rows(worker)
        rows.old_logprobs = [[x - 0.05 for x in lp] for lp in worker.compute_logprobs(rows)]  # ratio != 1
        out[budget] = [worker.compute_gradients(rows, float(rows.response_tokens()), float(rows.active_sequences()),
                                                algorithm=agg) for agg in AGG]
    for agg, (sw, gw), (ss, gs) in zip(AGG, out[8192], out[22]):
        assert ss["part/loss"] == pytest.approx(sw["part/loss"], rel=1e-6), agg
        assert grad_rel(gw, gs) < 1e-6, agg


def test_weight_decay_and_warmup_on_cuda(tmp_path: Any) -> None:
    lr, wd = 1e-3, 0.1
    worker = _learner(tmp_path, "learner.master_dtype=float64", f"algorithm.lr={lr}", f"algorithm.weight_decay={wd}",
                      "algorithm.warmup_steps=2")
    rows = _rows(worker, 0.0)
    before = _weights(worker)
    for k, rate in enumerate([lr / 2, lr, lr], start=1):
        out = _train(worker, rows)
        assert out["lr"] == pytest.approx(rate) and out["grad_norm"] == 0.0, out
        after = _weights(worker)
        for name, w in before.items():
            moved = w != 0
            ratio = after[name][moved] / w[moved]
            # ZeRO keeps float32 master weights: exact to float32 rounding, far from the next step's 5e-5
            assert torch.allclose(ratio, torch.full_like(ratio, 1 - rate * wd), rtol=0, atol=1e-6), (k, name)
        before = after


def test_all_clipped_batch_has_no_gradient(tmp_path: Any) -> None:
    worker = _learner(tmp_path, "learner.master_dtype=float64")
    rows = _rows(worker)
    now = worker.compute_logprobs(rows)
    rows.old_logprobs = [[x - 0.5 * a for x, a in zip(lp, adv)] for lp, adv in zip(now, rows.advantages)]
    sums, grads = worker.compute_gradients(rows, float(rows.response_tokens()), float(rows.active_sequences()))
    assert max(g.abs().max().item() for g in grads.values()) == 0.0
    assert sums["sum/actor/pg_clipfrac"] == pytest.approx(rows.response_tokens())


def test_zero3_sync_source_pulled_from_a_side_stream(tmp_path: Any) -> None:
    from rlvr.learner.sync_source import CudaStreams, gathered_buckets, sync_params, zero3_gather
    from rlvr.weight_sync import plan_buckets

    worker = _learner(tmp_path, "model.dtype=bfloat16", "learner.zero_stage=3")
    named = sync_params(worker.engine.module)
    assert all(hasattr(p, "ds_numel") for _, p in named)  # ZeRO-3 owns them: reading needs a gather
    buckets = plan_buckets(worker.weight_manifest(), 64 << 10)
    assert len(buckets) > 3
    expected = worker.export_weights([n for n, _ in named], dtype="bfloat16")
    side = torch.cuda.Stream()
    source = gathered_buckets(dict(named), buckets, torch.bfloat16, worker.device, zero3_gather(True),
                              CudaStreams(worker.device))
    got: dict[str, torch.Tensor] = {}
    while True:
        with torch.cuda.stream(side):  # vLLM's packed producer pulls each tensor inside its own stream
            try:
                name, tensor = next(source)
            except StopIteration:
                break
            assert torch.cuda.current_stream() == side
            got[name] = tensor * 1  # read on the side stream, as the packer's torch.cat does
    side.synchronize()
    assert list(got) == [n for bucket in buckets for n in bucket]
    for name, tensor in got.items():
        assert torch.equal(tensor.cpu(), expected[name]), name


def test_learner_calls_give_the_cuda_cache_back(tmp_path: Any) -> None:
    from rlvr.learner.worker import LearnerWorker

    worker = _learner(tmp_path, "model.dtype=bfloat16", "learner.zero_stage=2")
    rows = _rows(worker)

    def cached() -> int:  # reserved by the caching allocator, held by no tensor
        return torch.cuda.memory_reserved() - torch.cuda.memory_allocated()

    LearnerWorker.train_step.__wrapped__(worker, rows, float(rows.response_tokens()), float(rows.active_sequences()))
    kept = cached()
    _train(worker, rows)
    left = cached()
    print(f"CUDA cache after an update: {kept / 2**20:.1f} MiB kept without the release, {left / 2**20:.1f} MiB with")
    assert kept > 0 and left < kept


def test_packing_and_chunked_logprobs_on_cuda(tmp_path: Any) -> None:
    import importlib.util
    import random

    from rlvr.learner.batch import TrainRows

    base = _learner(tmp_path, "learner.packing=false", "learner.logprob_chunk_tokens=0")
    other = _learner(tmp_path, "model.dtype=bfloat16", "learner.packing=true", "learner.logprob_chunk_tokens=16")
    rng = random.Random(0)
    lengths = [40, 9, 8, 12, 7, 14, 33, 6]
    rows = TrainRows(input_ids=[[rng.randrange(3, 20) for _ in range(n)] for n in lengths],
                     prompt_lens=[4] * len(lengths),
                     advantages=[[1.0 if k % 2 == 0 else -1.0] * (n - 4) for k, n in enumerate(lengths)])
    has_flash = importlib.util.find_spec("flash_attn") is not None
    assert other.packing == has_flash, other.batching  # packed on CUDA only with the variable-length kernel
    if has_flash:  # bf16, flash-attention varlen vs padded sdpa: bf16 rounding apart, no cross-sequence attention
        padded16 = _learner(tmp_path, "model.dtype=bfloat16", "learner.packing=false")
        a, b = padded16.compute_logprobs(rows), other.compute_logprobs(rows)
        assert max(abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys)) < 5e-2
    else:
        assert "flash-attn" in other.batching
    other = _learner(tmp_path, "learner.packing=true", "learner.logprob_chunk_tokens=16")  # float32: chunking alone
    a, b = base.compute_logprobs(rows), other.compute_logprobs(rows)
    assert max(abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys)) < 1e-4
    n_tok, n_seq = float(rows.response_tokens()), float(rows.active_sequences())
    (sa, ga), (sb, gb) = base.compute_gradients(rows, n_tok, n_seq), other.compute_gradients(rows, n_tok, n_seq)
    assert sb["part/loss"] == pytest.approx(sa["part/loss"], rel=1e-4)
    assert grad_rel(ga, gb) < 1e-4
