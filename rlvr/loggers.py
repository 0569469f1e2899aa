"""Metric loggers: the same keys and values go to every one the recipe names (``logging.loggers``).

``metrics.jsonl`` in the run directory is always written (it is what `rlvr plot`, `rlvr samples` and a
resumed run read); TensorBoard, Weights & Biases and MLflow are optional and imported only when asked
for. W&B defaults to offline mode (``logging.wandb_mode``), so a run never waits on a network; sync it
later with ``wandb sync RUN/wandb/offline-run-*``. MLflow writes to a local file store (``RUN/mlruns``)
unless ``logging.mlflow_tracking_uri`` points elsewhere. Non-finite values are skipped by the backends
that reject them, never by the JSONL file.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

from rlvr.config.schema import RecipeConfig

LOGGERS = ("tensorboard", "wandb", "mlflow")


class MetricLogger(Protocol):
    def log(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        """``kind``: ``train`` (one row per step) or ``eval``; eval keys already start with ``eval/``."""

    def close(self) -> None: ...


class JsonlLogger:
    """``metrics.jsonl``: one object per row, flushed line by line so a crashed run keeps its history."""

    def __init__(self, run_dir: Path) -> None:
        self._f = open(run_dir / "metrics.jsonl", "a", buffering=1)

    def log(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        self._f.write(json.dumps({"step": step, "kind": kind, **metrics}) + "\n")

    def close(self) -> None:
        self._f.close()


class TensorBoardLogger:
    """Scalars under ``RUN/tensorboard`` (``tensorboard --logdir runs``)."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = run_dir / "tensorboard"
        self._w = SummaryWriter(log_dir=str(self.dir))

    def log(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._w.add_scalar(key, value, global_step=step)
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class WandbLogger:
    """A W&B run in ``RUN/wandb`` (offline by default). A resumed run continues the same W&B run id."""

    def __init__(self, run_dir: Path, cfg: RecipeConfig) -> None:
        import wandb

        from rlvr.config import dump_recipe

        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
        id_file.write_text(run_id)
        self._run = wandb.init(
            project=cfg.logging.wandb_project, name=run_dir.name, id=run_id, resume="allow", dir=str(run_dir),
            mode=cfg.logging.wandb_mode, config={"recipe": dump_recipe(cfg)},
            settings=wandb.Settings(silent=True, x_disable_stats=True, init_timeout=120),
        )

    def log(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        self._run.log({k: v for k, v in metrics.items() if math.isfinite(v)}, step=step)

    def close(self) -> None:
        self._run.finish()


class MlflowLogger:
    """An MLflow run in experiment ``logging.mlflow_experiment``; a resumed run continues it."""

    def __init__(self, run_dir: Path, cfg: RecipeConfig) -> None:
        from mlflow.tracking import MlflowClient

        uri = cfg.logging.mlflow_tracking_uri or (run_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # MLflow 3 keeps the file store in maintenance mode behind this opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(cfg.logging.mlflow_experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(cfg.logging.mlflow_experiment)
        id_file = run_dir / "mlflow_run_id"
        if id_file.is_file():
            self.run_id = id_file.read_text().strip()
        else:
            self.run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
            id_file.write_text(self.run_id)
        self.tracking_uri = uri

    def log(self, step: int, kind: str, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = _now_ms()
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(v)]
        for i in range(0, len(batch), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


class LoggerError(RuntimeError):
    """A logger the recipe asks for cannot start (its package is missing, its store unreachable)."""


def build_loggers(cfg: RecipeConfig, run_dir: Path) -> list[Any]:
    """JSONL always, then each logger the recipe names, in order."""
    make = {"tensorboard": lambda: TensorBoardLogger(run_dir), "wandb": lambda: WandbLogger(run_dir, cfg),
            "mlflow": lambda: MlflowLogger(run_dir, cfg)}
    out: list[Any] = [JsonlLogger(run_dir)]
    for name in cfg.logging.loggers:
        try:
            out.append(make[name]())
        except ImportError as err:
            raise LoggerError(f"logging.loggers has {name}, but its package is not installed ({err}); "
                              "pip install 'rlvr[loggers]'") from None
        except Exception as err:
            raise LoggerError(f"logging.loggers: {name} could not start: {type(err).__name__}: {err}") from None
    return out
