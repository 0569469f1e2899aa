"""2 rollout engines + 2 learner ranks train the tiny recipe like 1 + 1 does at the same global batch, down to
the sampled tokens.

Why the runs can be compared sample by sample: sampling seeds are assigned per prompt (not per engine), so
before any update both runs generate exactly the same tokens; the learner's loss normalisers are global
over the mini-batch, so 2 ranks take the same step as 1 up to float32 reduction order (~1e-7 relative),
and the next rollouts differ only where that moves a sample across a sampling boundary, which is rare.
A wrong split (a per-rank normaliser, a shard trained twice or dropped, a rank's gradient not averaged in)
changes the update by far more and the samples part ways from the next step on.

Both runs are the real driver loop in this process (`rlvr.trainer.train`, engines of their own), with the
step's rollout batch recorded on its way to the learners.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr.config import load_recipe
from rlvr.rollout import sampling
from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE

STEPS = 6
SAMPLE_STEP = sampling.sample_step  # the real one, whatever a test has patched since


def _train(out: Path, engines: int, ranks: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[list[list[int]]]]:
    """Run the default recipe; the run directory and each step's sampled token ids (every sample, in order)."""
    import rlvr.trainer as trainer

    cfg = load_recipe(DEFAULT_RECIPE, [f"run.steps={STEPS}", f"run.output_dir={out}", f"run.name=e{engines}r{ranks}",
                                       f"rollout.num_engines={engines}", f"learner.num_ranks={ranks}",
                                       "eval.interval=0", "checkpoint.final=false"])
    real = SAMPLE_STEP
    seen: list[list[list[int]]] = []

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        batch, metrics = real(*args, **kwargs)
        seen.append([s["token_ids"] for s in batch.samples])
        return batch, metrics

    monkeypatch.setattr(sampling, "sample_step", recording)  # what the synchronous loop's SyncRollouts calls
    return trainer.train(cfg), seen


def test_two_by_two_matches_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (one, a_ids), (two, b_ids) = _train(tmp_path, 1, 1, monkeypatch), _train(tmp_path, 2, 2, monkeypatch)
    a, b = read_metrics(one, "train"), read_metrics(two, "train")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, STEPS + 1))
    assert len(a_ids) == len(b_ids) == STEPS and all(len(x) == 512 for x in a_ids + b_ids)
    assert a_ids[0] == b_ids[0]  # before the first update: the same 512 samples, token for token
    same = [sum(x == y for x, y in zip(xs, ys)) / len(xs) for xs, ys in zip(a_ids, b_ids)]
    print("identical samples per step:", [f"{s:.3f}" for s in same])
    assert min(same) >= 0.99, same  # after each update, all but a handful are still identical (measured: all)
    for ra, rb in zip(a, b):  # the same samples score the same, and the updates agree
        if same[ra["step"] - 1] == 1.0:
            assert ra["reward/mean"] == rb["reward/mean"], ra["step"]
        assert abs(ra["reward/mean"] - rb["reward/mean"]) <= 1 - same[ra["step"] - 1]
        assert ra["actor/loss"] == pytest.approx(rb["actor/loss"], rel=1e-3, abs=1e-6), ra["step"]
        assert ra["actor/grad_norm"] == pytest.approx(rb["actor/grad_norm"], rel=1e-2), ra["step"]
    assert a[0]["actor/grad_norm"] == pytest.approx(b[0]["actor/grad_norm"], rel=1e-4)
    assert a[-1]["reward/mean"] > a[0]["reward/mean"] + 0.1  # and it learns
    ea, eb = read_metrics(one, "eval")[-1], read_metrics(two, "eval")[-1]
    assert abs(ea["eval/heldout/accuracy"] - eb["eval/heldout/accuracy"]) <= 0.01
