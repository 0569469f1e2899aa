"""Asynchronous vs synchronous RL, end to end: the same recipe and seed run synchronously, one-step-off
(``rollout.max_staleness=1``) and one-step-off with partial rollouts, each through the real CLI; prints
per mode the trained tokens per second from step ``--from-step`` on, where the step time goes (generation,
engine idle, learner waiting for its batch or for the engines before the sync, update, sync), and the
held-out accuracy before and after.

    python bench/async_throughput.py                                   # tiny_cot_grpo, 30 steps
    python bench/async_throughput.py --steps 20 --modes sync,async     # a subset
    python bench/async_throughput.py --recipe recipes/tiny_arith_grpo.yaml --steps 20

Trained tokens per second: prompt + response tokens of the steps from ``--from-step`` on, divided by the
wall time they took (the sum of their ``time/step_s``; eval runs only before and after training, so it is
outside). Runs go to ``--out`` (default a temporary folder) and are kept, with their metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES: dict[str, list[str]] = {
    "sync": ["rollout.max_staleness=0"],
    "async": ["rollout.max_staleness=1"],
    "partial": ["rollout.max_staleness=1", "rollout.partial=true"],
}


def run(recipe: Path, mode: str, steps: int, out: Path, extra: list[str]) -> Path:
    name = f"bench_{mode}"
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(recipe), f"run.steps={steps}", f"run.output_dir={out}",
           f"run.name={name}", "eval.interval=0", "checkpoint.final=false", *MODES[mode], *extra]
    start = time.perf_counter()
    log = out / f"{name}.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=3600)
    if proc.returncode:
        raise SystemExit(f"{mode}: rlvr train exited {proc.returncode}; see {log}")
    print(f"{mode}: {time.perf_counter() - start:.0f} s wall (start-up included), log {log}", flush=True)
    return out / name


def summary(run_dir: Path, from_step: int) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    train = [r for r in rows if r.get("kind") == "train" and r["step"] >= from_step]
    evals = [r for r in rows if r.get("kind") == "eval"]
    wall = sum(r["time/step_s"] for r in train)
    tokens = sum(r["throughput/tokens_per_s"] * r["time/step_s"] for r in train)

    def mean(key: str) -> float:
        return statistics.fmean(r.get(key, 0.0) for r in train)

    acc = [(r["step"], r[k]) for r in evals for k in r if k.endswith("/accuracy") and k.startswith("eval/")]
    return {
        "steps": len(train), "tokens_per_s": tokens / wall, "step_s": wall / len(train),
        "generate_s": mean("time/generate_s"), "engine_idle_s": mean("time/engine_idle_s"),
        "learner_wait_s": mean("time/learner_wait_s"), "sync_wait_s": mean("time/sync_wait_s"),
        "update_s": mean("time/update_s"), "sync_s": mean("time/sync_s"),
        "response_len": mean("response_length/mean"), "clip_ratio": mean("response_length/clip_ratio"),
        "staleness": mean("rollout/staleness_mean"), "off_policy_tokens": mean("rollout/off_policy_token_fraction"),
        "accuracy": acc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "tiny_cot_grpo.yaml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--from-step", type=int, default=5)
    parser.add_argument("--modes", default="sync,async,partial")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every mode (KEY=VALUE)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="rlvr-bench-async-"))
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for mode in args.modes.split(","):
        results[mode] = summary(run(args.recipe.resolve(), mode, args.steps, out, args.overrides), args.from_step)
    base = results.get("sync", {}).get("tokens_per_s")
    cols = ["tokens_per_s", "step_s", "generate_s", "engine_idle_s", "learner_wait_s", "sync_wait_s", "update_s",
            "sync_s", "response_len", "clip_ratio", "staleness", "off_policy_tokens"]
    print(f"\n{args.recipe.name}, {args.steps} steps, figures from step {args.from_step} on (means per step):")
    print(f"{'mode':<8} " + " ".join(f"{c:>15}" for c in cols) + f" {'speed-up':>9}  held-out accuracy")
    for mode, r in results.items():
        speed = f"{r['tokens_per_s'] / base:.2f}x" if base else "-"
        acc = ", ".join(f"step {s}: {a:.3f}" for s, a in r["accuracy"])
        print(f"{mode:<8} " + " ".join(f"{r[c]:>15.3f}" for c in cols) + f" {speed:>9}  {acc}")
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"\nruns and summary.json in {out}")


if __name__ == "__main__":
    main()
