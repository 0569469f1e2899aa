"""``rlvr plot RUN_DIR [RUN_DIR...]``: training curves of one or more runs as one PNG.

One panel per metric (reward, accuracy, response length, entropy, KL, step time and every held-out
set's accuracy by default), one line per run, read from each run's ``metrics.jsonl``. A metric a run
did not log is left out of that run's panel; a panel no run has is dropped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rlvr.tracking import read_metrics

DEFAULT_METRICS = ["reward/mean", "accuracy", "response_length/mean", "actor/entropy", "actor/kl", "time/step_s"]


class PlotError(ValueError):
    """Nothing to plot: no run directory, no metrics file, or none of the asked metrics."""


def series(run_dir: Path, metric: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric in one run (train rows, or eval rows for ``eval/...``)."""
    kind = "eval" if metric.startswith("eval/") else "train"
    rows = [r for r in read_metrics(run_dir, kind) if metric in r and isinstance(r[metric], int | float)]
    return [int(r["step"]) for r in rows], [float(r[metric]) for r in rows]


def plot_runs(run_dirs: list[Path], metrics: list[str] | None, out: Path) -> Any:
    """Write the PNG to ``out``; return the matplotlib figure (its lines are the data plotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    for d in run_dirs:
        if not (d / "metrics.jsonl").is_file():
            raise PlotError(f"{d}: no metrics.jsonl (is it a run directory?)")
    if metrics is None:
        evals = sorted({k for d in run_dirs for r in read_metrics(d, "eval") for k in r if k.endswith("/accuracy")})
        metrics = DEFAULT_METRICS + evals
    panels = [(m, [(d, *series(d, m)) for d in run_dirs]) for m in metrics]
    panels = [(m, [line for line in lines if line[1]]) for m, lines in panels]
    panels = [(m, lines) for m, lines in panels if lines]
    if not panels:
        raise PlotError(f"none of {metrics} was logged by {[str(d) for d in run_dirs]}")
    names = [d.name for d in run_dirs]
    labels = {d: d.name if names.count(d.name) == 1 else f"{d.parent.name}/{d.name}" for d in run_dirs}
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, (metric, lines) in zip(axes.flat, panels):
        for d, steps, values in lines:
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=labels[d])
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if len(run_dirs) > 1:
        axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return fig
