"""Held-out accuracy of loss presets trained on the embedded tiny task, one after another on shared engines.

    python bench/preset_table.py                         # every preset, 20 steps each
    python bench/preset_table.py cispo sapo --steps 40   # some presets, longer
    python bench/preset_table.py grpo cispo --set algorithm.mini_batches=2 algorithm.epochs=2   # off-policy

Each run is the default recipe's task (`recipes/tiny_arith_grpo.yaml`) with only ``algorithm.name`` and the
learning rate set, so the preset's own parts are what runs (as in tests/integration/test_training.py; dapo, nft
and ppo also have tuned tiny recipes in recipes/). The reward is exact_int inside a compose verifier next to a
length term of weight 0, so the score is exact_int's while GDPO has two terms to normalise. The engines (Ray,
one vLLM engine, the verifier pool) start once; each run brings fresh learners and pushes their weights into
the engine first, so every run starts from the same base policy. Prints one row per preset: greedy held-out
accuracy at every evaluation, the gain over step 0, and the run's wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rlvr.algorithms import ALGORITHM_NAMES
from rlvr.config import RecipeConfig, load_recipe
from rlvr.config.loader import deep_merge, parse_overrides
from rlvr.engines import Engines
from rlvr.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "recipes" / "tiny_arith_grpo.yaml"
REWARD = {"verifier": "compose", "verifier_kwargs": {"terms": [
    {"name": "correct", "verifier": "exact_int"},
    {"name": "length", "verifier": "length_penalty", "weight": 0.0, "kwargs": {"max_length": 6, "buffer": 1}},
]}}


def recipe(preset: str, out: Path, steps: int, lr: float, overrides: list[str]) -> RecipeConfig:
    cfg = load_recipe(DEFAULT, [f"run.output_dir={out}", f"run.name={preset}", f"run.steps={steps}",
                                f"eval.interval={max(1, steps // 4)}", "checkpoint.final=false",
                                "logging.samples_per_step=0"])
    raw = cfg.model_dump()
    raw["reward"].update(REWARD)
    raw["algorithm"] = {"name": preset, "lr": lr}
    return RecipeConfig.model_validate(deep_merge(raw, parse_overrides(overrides)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", default=list(ALGORITHM_NAMES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides applied to every run")
    args = parser.parse_args()
    from rlvr.trainer import train

    out = Path(tempfile.mkdtemp(prefix="rlvr-presets-"))
    first = recipe(args.presets[0], out, args.steps, args.lr, args.set)
    rows = []
    with Engines(first, critic="ppo" in args.presets, row_verifiers=[], log=lambda _: None, log_dir=out) as engines:
        for preset in args.presets:
            t0 = time.perf_counter()
            run_dir = train(recipe(preset, out, args.steps, args.lr, args.set), engines=engines)
            evals = {r["step"]: r["eval/heldout/accuracy"] for r in read_metrics(run_dir, "eval")}
            rows.append((preset, evals, time.perf_counter() - t0))
            curve = "  ".join(f"{step}:{acc:.3f}" for step, acc in sorted(evals.items()))
            print(f"{preset:<22} {curve}  gain {evals[max(evals)] - evals[0]:+.3f}  ({rows[-1][2]:.0f} s)", flush=True)
    print(f"\n| preset | step 0 | step {args.steps} | gain |\n|---|---|---|---|")
    for preset, evals, _ in rows:
        last = max(evals)
        print(f"| {preset} | {evals[0]:.3f} | {evals[last]:.3f} | {100 * (evals[last] - evals[0]):+.1f} points |")


if __name__ == "__main__":
    main()
