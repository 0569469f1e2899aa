"""Packed micro-batches and chunked log-probs change nothing but speed and memory: against padded rows with
whole-vocabulary logits, the per-token log-probs, the entropy, the loss and the full gradients agree
(float64 <= 1e-10, float32 <= 1e-5; gradients accumulated over several ZeRO micro-batches <= 1e-6, the float32
floor of DeepSpeed's buffers) for sequences of mixed lengths (packed rows hold several), tied and
untied embeddings, ZeRO 0 / 2 / 3, 1 and 2 ranks. Rows are spread over ranks by tokens; the results come
back in row order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import ray

from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import free_port, init_ray
from tests.conftest import DEFAULT_RECIPE, grad_rel, tied_tiny_model

pytestmark = pytest.mark.integration

LENGTHS = [40, 9, 8, 12, 7, 14, 33, 6, 10, 11, 21, 5]  # packed rows of 40 hold 2-5 sequences each


def _rows(vocab: int) -> TrainRows:
    rng = random.Random(0)
    ids = [[rng.randrange(3, vocab) for _ in range(n)] for n in LENGTHS]
    plens = [max(2, n // 3) for n in LENGTHS]
    adv = [[(1.0 if k % 2 == 0 else -1.0) * (0.5 + 0.1 * t) for t in range(n - p)]
           for k, (n, p) in enumerate(zip(LENGTHS, plens))]
    return TrainRows(input_ids=ids, prompt_lens=plens, advantages=adv)


def _run(tmp: Path, model: Path | None, *overrides: str) -> tuple[Any, ...]:
    cfg = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp}", "algorithm.kl_coef=0.1",
                                       *([f"model.path={model}"] if model else []), *overrides])
    placement = Placement.reserve(cfg, critic=False, timeout_s=60)
    learners = LearnerGroup(cfg, timeout_s=240, placement=placement)
    try:
        batching = learners.setup()["batching"]
        rows = _rows(vocab=20)
        rows.ref_logprobs = learners.compute_logprobs(rows, "reference")
        policy = learners.compute_logprobs(rows, "policy")
        rows.old_logprobs = [[x - 0.05 for x in lp] for lp in policy]  # ratio != 1
        loss, metrics, grads = learners.compute_gradients(rows, kl_coef=0.1, algorithm={"entropy_coef": 0.01})
        return batching, policy, loss, metrics["actor/entropy"], grads
    finally:
        learners.shutdown()
        placement.remove()


def _assert_same(a: tuple[Any, ...], b: tuple[Any, ...], tol: float, grad_tol: float | None = None) -> None:
    _, lp_a, loss_a, ent_a, g_a = a
    _, lp_b, loss_b, ent_b, g_b = b
    assert [len(x) for x in lp_a] == [len(x) for x in lp_b] == [n - max(2, n // 3) for n in LENGTHS]
    assert max(abs(x - y) for xs, ys in zip(lp_a, lp_b) for x, y in zip(xs, ys)) <= tol
    assert abs(loss_a - loss_b) <= tol * max(1.0, abs(loss_a)) and abs(ent_a - ent_b) <= tol * max(1.0, ent_a)
    assert grad_rel(g_a, g_b) <= (grad_tol or tol), grad_rel(g_a, g_b)



PADDED = ("learner.packing=false", "learner.logprob_chunk_tokens=0")
PACKED = ("learner.packing=true", "learner.logprob_chunk_tokens=16")  # 16-token chunks: several per micro-batch


@pytest.fixture(scope="module")
def ray_session():
    init_ray(None, None, 3)
    yield
    ray.shutdown()


def test_packed_and_chunked_match_padded_in_float64(ray_session, tmp_path: Path) -> None:
    f64 = ("learner.master_dtype=float64",)
    base = _run(tmp_path, None, *PADDED, *f64)
    assert base[0].startswith("padded rows")
    one = _run(tmp_path, None, *PACKED, *f64)
    assert one[0].startswith("packed rows"), one[0]
    _assert_same(base, one, 1e-10)
    two = ("learner.zero_stage=3", "learner.num_ranks=2", "learner.micro_batch_tokens=48")  # several micro-batches
    packed2 = _run(tmp_path, None, *PACKED, *f64, *two)
    # Log-probs and loss to 1e-10; the gradients to 1e-6, as in test_invariance.py: with several micro-batches
    # DeepSpeed accumulates ZeRO gradients in float32 even for float64 masters, so the split alone moves them
    # by ~3e-8 (measured: padded vs packed, both with these 2 ranks, 2.6e-8).
    _assert_same(base, packed2, 1e-10, grad_tol=1e-6)


def test_packed_and_chunked_match_padded_on_a_tied_model(ray_session, tmp_path: Path) -> None:
    tied = tied_tiny_model(str(load_recipe(DEFAULT_RECIPE).model.path), tmp_path / "tied")
    f64 = ("learner.master_dtype=float64", "learner.zero_stage=3")
    _assert_same(_run(tmp_path, tied, *PADDED, *f64), _run(tmp_path, tied, *PACKED, *f64), 1e-10)


def test_packed_and_chunked_match_padded_in_float32_without_zero(ray_session, tmp_path: Path) -> None:
    f32 = ("learner.zero_stage=0",)  # DeepSpeed reduces no float64 gradients without ZeRO
    _assert_same(_run(tmp_path, None, *PADDED, *f32), _run(tmp_path, None, *PACKED, *f32), 1e-5)


def test_a_model_that_cannot_pack_is_refused_at_start(tmp_path: Path) -> None:
    """If the model's attention ignored restarting position ids (here: transformers' packed-sequence detection
    switched off), packed sequences would attend to each other silently; the learner refuses to start."""
    import subprocess
    import sys

    script = f"""
import transformers.masking_utils as mu
mu.find_packed_sequence_indices = lambda position_ids: None  # attention as if one sequence per row
from rlvr.config import load_recipe
from rlvr.learner.worker import LearnerWorker
from tests.conftest import DEFAULT_RECIPE
cfg = load_recipe(DEFAULT_RECIPE, ["run.output_dir={tmp_path}", "algorithm.kl_placement=none", "algorithm.kl_coef=0"])
try:
    LearnerWorker(cfg, 0, 1, "127.0.0.1", {free_port()}).setup()
except RuntimeError as err:
    print("REFUSED:", err)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parents[2])
    assert "REFUSED: learner.packing: Qwen2ForCausalLM does not keep packed sequences apart" in out.stdout, (
        out.stdout[-2000:] + out.stderr[-2000:])
    assert "Set learner.packing=false" in out.stdout

