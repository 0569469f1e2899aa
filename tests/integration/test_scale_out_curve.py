"""2 rollout engines + 2 learner ranks train the tiny recipe through the real CLI like 1 + 1 does at the
same global batch.

Why the curves can be compared tightly: sampling seeds are assigned per prompt (not per engine), so at
step 1, before any update, both runs generate exactly the same samples; the learner's loss normalisers
are global over the mini-batch, so 2 ranks take the same step as 1 up to float32 reduction order. After
that the runs drift only through rounding, which sampling amplifies slowly, so later steps are compared
within noise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE

STEPS = 8


def _train(out: Path, engines: int, ranks: int) -> Path:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), f"run.steps={STEPS}",
           f"run.output_dir={out}", f"run.name=e{engines}r{ranks}", f"rollout.num_engines={engines}",
           f"learner.num_ranks={ranks}", "eval.interval=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{engines} rollout engine(s)" in proc.stdout and f"{ranks} learner rank(s)" in proc.stdout
    return Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))


def test_two_by_two_matches_one_by_one(tmp_path: Path) -> None:
    one, two = _train(tmp_path, 1, 1), _train(tmp_path, 2, 2)
    a, b = read_metrics(one, "train"), read_metrics(two, "train")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, STEPS + 1))
    assert a[0]["reward/mean"] == b[0]["reward/mean"]  # identical samples before the first update
    assert a[0]["actor/loss"] == pytest.approx(b[0]["actor/loss"], rel=1e-4, abs=1e-6)
    assert a[0]["actor/grad_norm"] == pytest.approx(b[0]["actor/grad_norm"], rel=1e-3)
    late_a = sum(r["reward/mean"] for r in a[-3:]) / 3
    late_b = sum(r["reward/mean"] for r in b[-3:]) / 3
    assert late_a > a[0]["reward/mean"] + 0.1 and late_b > b[0]["reward/mean"] + 0.1  # both learn
    assert abs(late_a - late_b) < 0.06, (late_a, late_b)  # 512 samples a step: sd of a mean ~0.02
    ea, eb = read_metrics(one, "eval")[-1], read_metrics(two, "eval")[-1]
    assert abs(ea["eval/heldout/accuracy"] - eb["eval/heldout/accuracy"]) < 0.06
