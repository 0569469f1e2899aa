"""Weight-sync time per step and its share of the step, for the tiny recipe with 1 and 2 rollout engines.

Each configuration is a real run of recipes/tiny_arith_grpo.yaml through the CLI; the figures come
from its metrics.jsonl (``time/sync_s``, ``sync/bytes``, ``time/step_s``), step 1 excluded (warm-up).

    python bench/weight_sync.py [--steps 12] [--engines 1 2] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics

from step_breakdown import train_default

from rlvr.tracking import read_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--engines", type=int, nargs="+", default=[1, 2])
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    print(f"{'engines':>8}{'sync s/step':>13}{'MB/step':>10}{'MB/s':>9}{'step s':>9}{'sync share':>12}")
    for engines in args.engines:
        run_dir = train_default(f"weight_sync_e{engines}", [
            f"run.steps={args.steps}", f"rollout.num_engines={engines}", "eval.data=[]", *args.overrides])
        rows = read_metrics(run_dir, "train")[1:]
        sync = statistics.fmean(r["time/sync_s"] for r in rows)
        step = statistics.fmean(r["time/step_s"] for r in rows)
        mbytes = statistics.fmean(r["sync/bytes"] for r in rows) / 1e6
        print(f"{engines:>8}{sync:>13.3f}{mbytes:>10.2f}{mbytes / sync:>9.0f}{step:>9.3f}{100 * sync / step:>11.1f}%")


if __name__ == "__main__":
    main()
