"""DAPO, NFT and PPO each raise held-out greedy accuracy (through vLLM) by at least 20 points
within their recipe's default budget on the arithmetic task (GRPO: `test_default_learns.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tracking import read_metrics
from tests.conftest import ROOT


@pytest.mark.parametrize("algo", ["dapo", "nft", "ppo"])
def test_recipe_raises_heldout_accuracy(algo: str, tmp_path: Path) -> None:
    recipe = ROOT / "recipes" / f"tiny_arith_{algo}.yaml"
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", str(recipe), f"run.output_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))
    evals = read_metrics(run_dir, "eval")
    before, after = evals[0]["eval/heldout/accuracy"], evals[-1]["eval/heldout/accuracy"]
    assert after - before >= 0.20, f"{algo}: held-out accuracy {before:.3f} -> {after:.3f}"
    train = read_metrics(run_dir, "train")
    if algo == "dapo":
        assert all("dynamic_sampling/signal_fraction" in r for r in train)
    if algo == "ppo":
        assert all("critic/vf_loss" in r for r in train)
    from rlvr.metrics import undocumented

    assert undocumented({k for row in train + evals for k in row}) == []  # the metrics reference covers them
