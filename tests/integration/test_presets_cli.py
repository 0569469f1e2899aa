"""Every preset runs through the real CLI on the tiny model with its own defaults (a minimal recipe
that names only the preset and a learning rate), and the metrics it should produce are there.
DAPO, NFT and PPO also run their full recipes in `test_algorithms_learn.py`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlvr.tracking import read_metrics
from tests.conftest import TINY

EXPECTED = {
    "grpo": "actor/kl",
    "drgrpo": "actor/pg_clipfrac",
    "gspo": "actor/ratio_mean",
    "lite_ppo": "actor/pg_clipfrac",
    "reinforce_pp": "actor/kl_in_reward",
    "reinforce_pp_baseline": "actor/kl",
    "rloo": "actor/pg_clipfrac",
}


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_trains_through_the_cli(preset: str, tmp_path: Path) -> None:
    recipe = {
        "run": {"name": preset, "output_dir": str(tmp_path), "steps": 2},
        "model": {"path": str(TINY / "model"), "dtype": "float32"},
        "data": {"train": [{"path": str(TINY / "data" / "train.jsonl")}], "max_prompt_tokens": 16},
        "rollout": {"prompts_per_step": 8, "n": 4, "max_new_tokens": 6, "kv_cache_gib": 1},
        "algorithm": {"name": preset, "lr": 3e-4},
        "learner": {"zero_stage": 2},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", str(path)], capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())["algorithm"]
    from rlvr.algorithms.registry import preset_defaults

    for key, value in preset_defaults(preset).items():
        assert resolved[key] == value, (preset, key)  # the preset's parts were what ran
    rows = read_metrics(run_dir, "train")
    assert len(rows) == 2
    for row in rows:
        assert EXPECTED[preset] in row, sorted(row)
        assert row["actor/grad_norm"] == row["actor/grad_norm"]  # not NaN
        assert abs(row["rollout/logprob_abs_diff"]) < 1e-3
