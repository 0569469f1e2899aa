"""A rollout engine killed mid-run ends the run within seconds with an error that names the engine, its
node and pid, and shows the tail of its log: never a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import DEFAULT_RECIPE, processes_with, wait_for


def test_killed_rollout_engine_is_reported_within_30s(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), "run.steps=200", "eval.data=[]",
           f"run.output_dir={tmp_path}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any(line.startswith("step 2/") for line in lines), 600), "".join(lines[-50:])
        victims = processes_with("ray::RolloutWorker")
        assert len(victims) == 1, victims
        killed_at = time.monotonic()
        os.kill(victims[0], signal.SIGKILL)
        proc.wait(timeout=60)
        elapsed = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 1, out[-3000:]
    assert elapsed < 30, elapsed
    error = out[out.index("error: "):]
    assert "rollout engine 0 (node " in error and f"pid {victims[0]}" in error and " died." in error, error
    assert "last lines of the log of rollout engine 0" in error, error
    assert not any(line.startswith("step 200/") for line in lines)

