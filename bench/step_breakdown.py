"""Per-phase time split of a training step, from a run's metrics.jsonl.

    python bench/step_breakdown.py RUN_DIR            # an existing run
    python bench/step_breakdown.py --train [K=V ...]  # run the default recipe first (overrides allowed)

Step 1 is excluded from the averages (first-call warm-up in vLLM and DeepSpeed).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from rlvr.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("generate", "verify", "advantage", "reference", "old_logprobs", "update", "sync")


def report(run_dir: Path) -> None:
    rows = read_metrics(run_dir, "train")
    steady = rows[1:] or rows
    total = statistics.fmean(r["time/step_s"] for r in steady)
    print(f"run: {run_dir}  steps: {len(rows)} (averaging {len(steady)})")
    print(f"{'phase':<14}{'mean s':>10}{'share':>9}")
    accounted = 0.0
    for phase in PHASES:
        key = f"time/{phase}_s"
        if key in steady[0]:
            mean = statistics.fmean(r[key] for r in steady)
            accounted += mean
            print(f"{phase:<14}{mean:>10.3f}{100 * mean / total:>8.1f}%")
    print(f"{'other':<14}{total - accounted:>10.3f}{100 * (total - accounted) / total:>8.1f}%")
    print(f"{'step':<14}{total:>10.3f}{100.0:>8.1f}%")
    tps = statistics.fmean(r["throughput/generate_tokens_per_s"] for r in steady)
    print(f"generation throughput: {tps:.0f} tokens/s")


def train_default(name: str, overrides: list[str]) -> Path:
    """Run the default recipe through the CLI (with ``overrides``) and return its run directory."""
    out = ROOT / "runs" / "bench"
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "recipes" / "tiny_arith_grpo.yaml"),
           f"run.output_dir={out}", f"run.name={name}", *overrides]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--train", action="store_true", help="run recipes/tiny_arith_grpo.yaml first")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.train:
        run_dir = train_default("step_breakdown", args.overrides)
    elif args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        ap.error("give RUN_DIR or --train")
    report(run_dir)


if __name__ == "__main__":
    main()
