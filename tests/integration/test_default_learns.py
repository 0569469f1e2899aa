"""The embedded default recipe, unmodified, learns: greedy held-out accuracy (through vLLM)
rises by at least 30 points from step 0 to the end. This is the README's first command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE


def test_default_recipe_raises_heldout_accuracy_by_30_points(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), f"run.output_dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))
    evals = read_metrics(run_dir, "eval")
    first, last = evals[0], evals[-1]
    assert first["step"] == 0 and last["step"] == len(read_metrics(run_dir, "train"))
    before, after = first["eval/heldout/accuracy"], last["eval/heldout/accuracy"]
    assert 0.2 <= before <= 0.6, f"base model greedy accuracy {before:.3f} outside the designed 20-60% band"
    assert after - before >= 0.30, f"held-out accuracy {before:.3f} -> {after:.3f}"
    assert (run_dir / "checkpoints" / "final" / "model.safetensors").is_file()
