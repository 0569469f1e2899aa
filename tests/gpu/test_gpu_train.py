"""GPU: the default recipe trains for two steps with CUDA vLLM and DeepSpeed on one GPU
(engine and learner rank colocated, half a GPU each). Skipped without a CUDA device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE

pytestmark = pytest.mark.gpu


def test_tiny_recipe_on_one_gpu(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), "run.steps=2", f"run.output_dir={tmp_path}",
           "rollout.gpu_memory_utilization=0.3", "eval.interval=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))
    rows = read_metrics(run_dir, "train")
    assert len(rows) == 2 and all(r["rollout/logprob_abs_diff"] < 1e-2 for r in rows)
