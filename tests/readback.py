"""Read metrics back from every logger's own files, the way their tools would: TensorBoard event files
(tensorboard's EventAccumulator), an offline W&B run (its ``.wandb`` record log, decoded with W&B's
protobufs), an MLflow file store (MlflowClient). Each returns ``{key: {step: value}}``."""

from __future__ import annotations

import json
import os
from pathlib import Path

Series = dict[str, dict[int, float]]


def from_jsonl(run_dir: Path, kind: str | None = None) -> Series:
    out: Series = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if kind is None or row["kind"] == kind:
            for k, v in row.items():
                if k not in ("step", "kind"):
                    out.setdefault(k, {})[row["step"]] = v
    return out


def from_tensorboard(run_dir: Path) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def _wandb_records(path: Path) -> list[bytes]:
    """W&B's record log: a 7-byte header (":W&B", magic, version), then LevelDB-log records in 32 KiB
    blocks: crc (4), length (2, little-endian), type (1: full, 2: first, 3: middle, 4: last), data."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, records, partial = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer: zero padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            partial = chunk
        elif kind == 3:
            partial += chunk
        elif kind == 4:
            records.append(partial + chunk)
    return records


def from_wandb(run_dir: Path) -> Series:
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    out: Series = {}
    for raw in _wandb_records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") != "history":
            continue
        items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item}
        step = int(items.pop("_step"))
        for k, v in items.items():
            if not k.startswith("_"):
                out.setdefault(k, {})[step] = v
    return out


def from_mlflow(run_dir: Path) -> Series:
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    keys = client.get_run(run_id).data.metrics
    return {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in keys}
