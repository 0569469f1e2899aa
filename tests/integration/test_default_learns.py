"""The embedded default recipe, unmodified, learns at the pace it was measured at: greedy held-out accuracy
(through vLLM) 0.394 at step 0, 0.944 at step 10, 0.988 at step 40; the sampled reward 0.60 at step 1 and
about 0.94 over the last steps. The thresholds (0.85 at step 10, 0.93 at the end, +0.2 reward) leave room
for other machines' rounding but not for a trainer learning several times slower (a 4x smaller learning
rate gives 0.50 at step 2 and 0.87 at step 10: tests/integration/test_training.py). This is the README's
first command, so it also holds the console to what a new user should see: at most 60 lines, rlvr's own (no
engine, learner or Ray chatter, which is in each worker's log file instead), the start-up broken down, and the
run directory with how to watch it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE


def test_default_recipe_learns_at_its_measured_pace(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), f"run.output_dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))
    evals = read_metrics(run_dir, "eval")
    first, last = evals[0], evals[-1]
    assert first["step"] == 0 and last["step"] == len(read_metrics(run_dir, "train"))
    before, after = first["eval/heldout/accuracy"], last["eval/heldout/accuracy"]
    assert 0.2 <= before <= 0.6, f"base model greedy accuracy {before:.3f} outside the designed 20-60% band"
    early = next(r["eval/heldout/accuracy"] for r in evals if r["step"] == 10)
    assert early >= 0.85, f"held-out accuracy {before:.3f} -> {early:.3f} at step 10"
    assert after >= 0.93, f"held-out accuracy {before:.3f} -> {after:.3f} at the end"
    reward = [r["reward/mean"] for r in read_metrics(run_dir, "train")]
    assert sum(reward[-5:]) / 5 - reward[0] >= 0.2, reward
    assert (run_dir / "checkpoints" / "final" / "model.safetensors").is_file()

    console = (proc.stdout + proc.stderr).splitlines()
    assert len(console) <= 60, "\n".join(console)
    chatter = [line for line in console if re.search(r"\b(INFO|WARNING|DEBUG)\b|Worker pid=|^\[W|Loading ", line)]
    assert not chatter, chatter
    assert console[0] == f"run directory: {run_dir}  (watch: rlvr samples {run_dir} --last; rlvr plot {run_dir} " \
                         f"--out {run_dir}/curves.png; worker logs in {run_dir}/logs)"
    assert any(line.startswith("placement: ") and "; Ray: a local instance of" in line for line in console)
    startup = next(line for line in console if line.startswith("start-up: "))
    assert all(f"{phase} " in startup for phase in ("data", "ray", "learners", "engines", "weight sync set-up"))
    assert any(line.startswith("time: ") and "before the first step" in line for line in console)
    # every worker's own output is in its file: vLLM's engine start, DeepSpeed's set-up, the verifier workers
    logs = run_dir / "logs"
    assert "Initializing a V1 LLM engine" in (logs / "rollout-0.log").read_text()
    assert "DeepSpeed" in (logs / "learner-0.log").read_text()
    row = next(r for r in read_metrics(run_dir) if r["kind"] == "startup")
    assert row["startup/ready_s"] > 0 and row["startup/before_first_step_s"] >= row["startup/ready_s"]
