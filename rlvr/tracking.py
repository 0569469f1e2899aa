"""Run directory, metrics and samples.

A run directory holds ``config.yaml`` (the fully resolved recipe), ``metrics.jsonl`` (one object
per step, plus ``eval`` rows), ``samples.jsonl`` (generations with their scores) and
``checkpoints/``. Files are appended and flushed line by line so a crashed run keeps its history.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rlvr.config import RecipeConfig, dump_recipe


class OutputError(RuntimeError):
    """The run directory cannot be created or written."""


def create_run_dir(cfg: RecipeConfig) -> Path:
    """``output_dir/name``, or ``output_dir/name-YYYYmmdd-HHMMSS`` if that already exists."""
    base = Path(cfg.run.output_dir)
    run = base / cfg.run.name
    if run.exists():
        run = base / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        run.mkdir(parents=True, exist_ok=False)
        (run / "config.yaml").write_text(dump_recipe(cfg))
    except OSError as err:
        raise OutputError(f"cannot write the run directory {run}: {err} (set run.output_dir)") from None
    return run


def open_run_dir(cfg: RecipeConfig, resume: str | None,
                 accept: Callable[[Path], None] | None = None) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None).

    ``resume`` None: a new run directory. ``auto``: ``output_dir/name`` itself, created if missing, resumed
    from its latest complete checkpoint if it has one (what a requeued batch job wants). A path: that
    checkpoint, or the latest complete one of that run directory. Metrics and samples logged after the
    checkpoint's step (by the run that stopped) are cut, so the resumed run's rows follow on exactly.
    """
    from rlvr.checkpoint import complete_checkpoints, find_checkpoint, read_state

    if resume is None:
        return create_run_dir(cfg), None
    if resume == "auto":
        run = Path(cfg.run.output_dir) / cfg.run.name
        found = complete_checkpoints(run) if run.is_dir() else []
        ckpt = found[-1] if found else None
    else:
        ckpt = find_checkpoint(resume)
        run = ckpt.parent.parent
    if ckpt is not None and accept is not None:
        accept(ckpt)
    try:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(dump_recipe(cfg))
        step = int(read_state(ckpt)["step"]) if ckpt else 0
        for name in ("metrics.jsonl", "samples.jsonl"):
            _cut_after(run / name, step)
    except OSError as err:
        raise OutputError(f"cannot write the run directory {run}: {err}") from None
    return run, ckpt


def _cut_after(path: Path, step: int) -> None:
    """Drop the rows of ``path`` logged for steps after ``step`` (atomically)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except (json.JSONDecodeError, AttributeError):  # a line cut short by the kill
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


class PhaseTimer:
    """Wall time per phase of a step, as ``time/<phase>_s`` metrics."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[f"time/{phase}_s"] = time.perf_counter() - start


class RunLog:
    """Sends each step's metrics to every logger (`rlvr.loggers`), appends samples, and prints one
    progress line per step: bar, step, elapsed time, ETA from the mean step time of this session, and the
    key metrics."""

    CONSOLE_KEYS = (
        ("reward/mean", "reward"), ("accuracy", "acc"), ("response_length/mean", "len"),
        ("actor/kl", "kl"), ("actor/entropy", "ent"), ("time/step_s", "s"),
    )
    BAR = 20

    def __init__(self, run_dir: Path, total_steps: int, out: TextIO = sys.stdout,
                 loggers: list[Any] | None = None) -> None:
        from rlvr.loggers import JsonlLogger

        self.run_dir, self.total, self.out = run_dir, total_steps, out
        self.loggers = loggers if loggers is not None else [JsonlLogger(run_dir)]
        self._samples = open(run_dir / "samples.jsonl", "a", buffering=1)
        self._t0, self._step_s = time.monotonic(), 0.0
        self._steps = 0

    def step(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log(step, "train", metrics)
        print(self.progress(step, metrics), file=self.out, flush=True)
        short = metrics.get("dynamic_sampling/topped_up", 0)
        if short:
            print(f"  warning: dynamic sampling found too few groups with signal after "
                  f"{metrics['dynamic_sampling/rounds']:.0f} rounds; topped up {short:.0f} zero-signal group(s) "
                  f"(raise algorithm.max_generation_batches, or the data is nearly all solved/unsolved)",
                  file=self.out, flush=True)
        for key, skipped in metrics.items():
            if key.endswith("/skipped_updates") and skipped:
                print(f"  warning: {skipped:.0f} {key.removesuffix('/skipped_updates')} update(s) skipped for a "
                      "NaN/Inf loss or gradient", file=self.out, flush=True)

    def progress(self, step: int, metrics: dict[str, float]) -> str:
        """``step 12/100 [##........] 0:01:03 eta 0:07:41 | reward 0.61 | ...``: time since the session
        started, and the remaining steps at this session's mean step time."""
        self._steps += 1
        self._step_s += metrics.get("time/step_s", 0.0)
        elapsed = time.monotonic() - self._t0
        eta = self._step_s / self._steps * (self.total - step)
        filled = round(self.BAR * step / max(self.total, 1))
        parts = [f"{short} {metrics[key]:.4g}" for key, short in self.CONSOLE_KEYS if key in metrics]
        return (f"step {step}/{self.total} [{'#' * filled}{'.' * (self.BAR - filled)}] {hms(elapsed)} "
                f"eta {hms(eta)} | " + " | ".join(parts))

    def eval(self, step: int, metrics: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log(step, "eval", metrics)
        parts = [f"{k.removeprefix('eval/')} {v:.4g}" for k, v in metrics.items()
                 if k.endswith("accuracy") or "/pass@" in k]
        print(f"eval @ step {step} | " + " | ".join(parts), file=self.out, flush=True)

    def record(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        """Metrics of another ``kind`` than a step's or an eval's (``startup``), to every logger, not the console."""
        for logger in self.loggers:
            logger.log(step, kind, metrics)

    def samples(self, step: int, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._samples.write(json.dumps({"step": step, **rec}, default=str) + "\n")

    def info(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
        self._samples.close()


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The metric rows of a run (optionally only ``train`` or ``eval`` rows)."""
    rows = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines() if line]
    return [r for r in rows if kind is None or r.get("kind") == kind]
