"""Cost of each metric logger: start-up, per-step log call (a train row of 60 metrics), close.

    python bench/loggers.py [--steps 200]

Prints one line per logger. The numbers bound what logging adds to a training step (a CPU step of the
tiny recipe is ~1 s; a GPU step of a 7B recipe is minutes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlvr.config import load_recipe  # noqa: E402
from rlvr.loggers import JsonlLogger, MlflowLogger, TensorBoardLogger, WandbLogger  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    cfg = load_recipe(ROOT / "recipes" / "tiny_arith_grpo.yaml")
    row = {f"group{g}/metric{m}": 0.1 * g + m for g in range(6) for m in range(10)}
    makers = {"jsonl": JsonlLogger, "tensorboard": TensorBoardLogger,
              "wandb (offline)": lambda d: WandbLogger(d, cfg), "mlflow (file store)": lambda d: MlflowLogger(d, cfg)}
    print(f"{'logger':<22}{'start s':>9}{'log ms/step p50':>17}{'p90':>8}{'close s':>9}")
    for name, make in makers.items():
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            logger = make(Path(tmp))
            start = time.perf_counter() - t
            times = []
            for step in range(1, args.steps + 1):
                t = time.perf_counter()
                logger.log(step, "train", {k: v * step for k, v in row.items()})
                times.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            logger.close()
            close = time.perf_counter() - t
            q = statistics.quantiles(times, n=10)
            print(f"{name:<22}{start:>9.2f}{statistics.median(times):>17.2f}{q[-1]:>8.2f}{close:>9.2f}")


if __name__ == "__main__":
    main()
