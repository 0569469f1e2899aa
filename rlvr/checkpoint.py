"""Checkpoints that a resumed run can trust: complete or invisible, and never silently stale.

A checkpoint is a folder ``RUN/checkpoints/step_000120/``::

    learner/              DeepSpeed checkpoint of the policy: weights, optimizer, LR scheduler, every ZeRO
                          shard (each rank writes its own), plus each rank's RNG states
    critic/               the same for PPO's value model
    hf/                   a Hugging Face export (``model.dtype`` safetensors + tokenizer) for eval and serving
    trainer_state.json    step, data position (epoch, order, index, shuffling RNG), KL controller, the
                          resolved recipe, rlvr's version
    COMPLETE              written last, after everything above is on disk

It is written into ``checkpoints/.tmp-step_000120`` and renamed into place only after ``COMPLETE``, so
a kill during saving leaves a ``.tmp-`` folder that resume ignores (and the next save removes), and the
previous checkpoint stays the latest. ``checkpoint.keep`` complete checkpoints are kept. Several nodes
must write to one shared file system (the learner ranks write their own shards).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from rlvr import __version__
from rlvr.config import RecipeConfig

MARKER = "COMPLETE"
STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")

# Recipe fields a resumed run may change: where and how fast it runs, how long, what it logs. Anything
# else (model, data, algorithm, rollout sampling, learner layout, reward) would make the resumed run a
# different experiment than the checkpoint's, so it is refused with the differing keys named.
RESUMABLE_CHANGES = (
    "run.steps", "run.name", "run.output_dir", "ray.", "logging.", "checkpoint.", "eval.", "resources.",
    "reward.num_workers", "reward.timeout_s", "rollout.chunks_per_engine", "rollout.kv_cache_gib",
    "rollout.gpu_memory_utilization", "rollout.sleep", "rollout.weight_transfer", "rollout.num_engines",
    "rollout.tensor_parallel_size", "data.bad_rows",
)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or resumed from; the message says which and why."""


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first (half-written ones are not listed)."""
    root = run_dir / "checkpoints"
    found = []
    for d in root.iterdir() if root.is_dir() else []:
        m = _STEP_DIR.match(d.name)
        if m and (d / MARKER).is_file() and (d / STATE).is_file():
            found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder given itself or its run directory (then the latest complete one)."""
    p = Path(path).resolve()
    if (p / MARKER).is_file():
        return p
    if p.name.startswith(".tmp-") or (_STEP_DIR.match(p.name) and p.is_dir()):
        raise CheckpointError(f"{p} is not a complete checkpoint (no {MARKER} marker: it was being written when "
                              "the run stopped); resume from its run directory to use the latest complete one")
    found = complete_checkpoints(p) if p.is_dir() else []
    if not found:
        raise CheckpointError(f"no complete checkpoint in {p} (expected {p}/checkpoints/step_NNNNNN/{MARKER})")
    return found[-1]


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / STATE).read_text())


def training_config(cfg: RecipeConfig) -> dict[str, Any]:
    """The resolved recipe, flattened to dotted keys."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            out[prefix[:-1]] = value

    walk("", cfg.model_dump(mode="json"))
    return out


def config_changes(saved: dict[str, Any], cfg: RecipeConfig) -> list[str]:
    """Keys whose values differ from the checkpoint's and may not change on resume."""
    now = training_config(cfg)
    keys = sorted(set(saved) | set(now))
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys
            if saved.get(k) != now.get(k) and not k.startswith(RESUMABLE_CHANGES)]


class CheckpointWriter:
    """Atomic checkpoints of one run directory, keeping the last ``keep``."""

    def __init__(self, run_dir: Path, keep: int) -> None:
        self.root, self.keep = run_dir / "checkpoints", keep

    def begin(self, step: int) -> Path:
        """A fresh temporary folder for step ``step`` (a leftover of a killed save is removed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.root / f".tmp-{step_dir_name(step)}"
        tmp.mkdir()
        return tmp

    def commit(self, tmp: Path, step: int, state: dict[str, Any]) -> Path:
        """Write the trainer state and the marker (both fsynced), rename into place, prune old ones."""
        _write_synced(tmp / STATE, json.dumps(state))
        _write_synced(tmp / MARKER, json.dumps({"step": step, "time": time.time(), "rlvr": __version__}))
        final = self.root / step_dir_name(step)
        if final.exists():  # the same step saved again (e.g. a preemption right after a scheduled save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(self.root)
        for old in complete_checkpoints(self.root.parent)[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def abort(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)


def trainer_state(step: int, cfg: RecipeConfig, sampler_state: dict[str, Any], kl_value: float) -> dict[str, Any]:
    return {"step": step, "sampler": sampler_state, "kl_coef": kl_value, "config": training_config(cfg),
            "rlvr": __version__}


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
