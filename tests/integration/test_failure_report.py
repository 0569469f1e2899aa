"""A rollout engine killed mid-run ends the run within seconds with an error that names the engine, its
node and pid, and shows the tail of its log: never a hang. (Learner and critic ranks:
tests/integration/test_training.py; the judge server: tests/integration/test_train_judge.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_RECIPE, CliRun, processes_with, running, wait_for


@pytest.mark.parametrize("extra", [[], ["rollout.max_staleness=1", "rollout.partial=true"]],
                         ids=["sync", "async-partial"])
def test_killed_rollout_engine_is_reported_within_30s(extra: list[str], tmp_path: Path) -> None:
    """Also in an asynchronous run with partial rollouts, where the engine dies under the producer's
    segment scheduler while the learner trains: the same report, and every worker of the run is gone."""
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), "run.steps=200", "eval.data=[]",
           f"run.output_dir={tmp_path}", *extra]
    run = CliRun(cmd)
    run.wait_line("step 2/")
    victims = processes_with("ray::RolloutWorker")
    assert len(victims) == 1, victims
    workers = processes_with("ray::LearnerWorker") + victims
    elapsed = run.killed_within(victims[0])
    assert run.proc.returncode == 1, run.out
    assert elapsed < 30, elapsed
    error = run.text[run.text.index("error: "):]
    assert "rollout engine 0 (node " in error and f"pid {victims[0]}" in error and " died." in error, error
    assert "last lines of the log of rollout engine 0" in error, error
    assert "/logs/rollout-0.log):" in error and "(empty)" not in error, error  # the tail of its own file
    assert not any(line.startswith("step 200/") for line in run.lines)
    assert wait_for(lambda: not any(running(pid) for pid in workers), 30), workers

