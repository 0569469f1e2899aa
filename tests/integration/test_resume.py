"""Exact resume through the real CLI, on a 16-prompt data set, with every piece of state a run carries: PPO
(policy, frozen reference and a critic, each with its optimizer), 2 data-parallel ranks per learner, an
adaptive KL coefficient, DAPO-style dynamic sampling (extra generation rounds move the data position) and a
learning-rate warm-up still under way at the checkpoint:

1. a straight 5-step run: the reference;
2. the same run with checkpoints every 2 steps, its process group SIGKILLed after step 3: it must resume
   from step 2 (step 3 was never checkpointed);
3. resumed, and sent SIGTERM after step 3: it finishes the step it is in, writes a complete checkpoint
   and exits 75, leaving no process behind;
4. resumed past a half-written checkpoint (a ``.tmp-`` folder and a step folder without its marker, as a
   kill during saving leaves them): it uses the latest complete one and runs to step 5;
5. resumed once more at the last step: it says there is nothing to train and exits 0 at once.

Every step's metrics (reward, accuracy, lengths, loss, KL and its coefficient, entropy, grad norms, value
loss, learning rates, generation rounds, ...; not timings) equal the straight run's exactly: on CPU, with
the seeds fixed and the same thread counts, the restored weights, optimizer moments, schedules, data
order and sampling seeds reproduce the same floating-point operations.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from rlvr.checkpoint import complete_checkpoints
from rlvr.tracking import read_metrics
from tests.conftest import ROOT, CliRun, first_train_rows, processes_with, running, wait_for

STEPS = 5
RECIPE = ROOT / "recipes" / "tiny_arith_ppo.yaml"
STATEFUL = ["learner.num_ranks=2", "algorithm.kl_target=0.02", "algorithm.dynamic_sampling=true",
            "algorithm.warmup_steps=3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return first_train_rows(tmp_path_factory.mktemp("data"), 16)


def _cmd(out: Path, name: str, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlvr.cli", "train", str(RECIPE), f"run.steps={STEPS}",
            f"run.output_dir={out}", f"run.name={name}", "eval.data=[]", "rollout.prompts_per_step=8",
            f"data.train=[{{path: {data}}}]", "checkpoint.final=false", *STATEFUL, *extra]


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "throughput/"))} for r in rows]


def test_kill_sigterm_and_resume_reproduce_the_straight_run(tmp_path: Path, data: Path) -> None:
    straight = CliRun(_cmd(tmp_path, "straight", data))
    assert straight.finish() == 0, straight.out
    reference = _comparable(read_metrics(tmp_path / "straight", "train"))
    assert [r["step"] for r in reference] == list(range(1, STEPS + 1))
    # the state under test really changes from step to step
    assert len({r["actor/kl_coef"] for r in reference}) == STEPS  # adaptive KL
    assert [r["actor/lr"] for r in reference][:3] == pytest.approx([1e-4, 2e-4, 3e-4])  # warm-up to 3e-4
    assert all(r["critic/vf_loss"] > 0 for r in reference) and max(r["dynamic_sampling/rounds"] for r in reference) > 1

    run_dir = tmp_path / "resumed"
    resume = _cmd(tmp_path, "resumed", data, "checkpoint.interval=2", "--resume", "auto")

    killed = CliRun(resume)  # (2) SIGKILL after step 3: only step 2 is checkpointed
    killed.wait_line("step 3/")
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.finish()
    assert [c.name for c in complete_checkpoints(run_dir)] == ["step_000002"]

    term = CliRun(resume)  # (3) SIGTERM after step 3: checkpoint at the end of the step in progress, exit 75
    term.wait_line("step 3/")
    workers = processes_with("ray::RolloutWorker") + processes_with("ray::LearnerWorker") + \
        processes_with("ray::CriticWorker")
    assert len(workers) == 5, workers  # 1 engine, 2 policy ranks, 2 critic ranks
    os.kill(term.proc.pid, signal.SIGTERM)
    assert term.finish() == 75, term.out
    assert "resumed from" in term.text and "step_000002 at step 2" in term.text, term.out
    assert "SIGTERM: stopping after this step with a checkpoint" in term.text, term.out
    saved = complete_checkpoints(run_dir)[-1]
    step = int(saved.name.removeprefix("step_"))
    assert step in (3, 4) and (saved / "learner" / "state").is_dir() and (saved / "hf" / "config.json").is_file()
    assert (saved / "critic" / "state").is_dir() and len(list((saved / "learner").glob("rng_rank*.pt"))) == 2
    assert json.loads((saved / "trainer_state.json").read_text())["step"] == step
    assert wait_for(lambda: not any(running(pid) for pid in workers), 30), workers
    assert not processes_with(str(run_dir)), "processes of the run outlived it"

    (run_dir / "checkpoints" / f".tmp-step_00000{step + 1}" / "learner").mkdir(parents=True)  # (4) kill mid-save
    (run_dir / "checkpoints" / "step_000009" / "learner").mkdir(parents=True)
    done = CliRun(resume)
    assert done.finish() == 0, done.out
    assert f"step_00000{step} at step {step}" in done.text, done.out
    assert not (run_dir / "checkpoints" / f".tmp-step_00000{step + 1}").exists()  # cleaned by the next save

    resumed = _comparable(read_metrics(run_dir, "train"))
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))  # rows after a checkpoint were cut
    for mine, ref in zip(resumed, reference):
        assert mine == ref, {k: (mine.get(k), ref.get(k)) for k in ref if mine.get(k) != ref.get(k)}

    again = CliRun(resume)  # (5) at the last step: nothing to do, said so, no engine started
    assert again.finish(timeout_s=120) == 0, again.out
    assert f"nothing to train: the checkpoint {run_dir}/checkpoints/step_000005 is at step 5" in again.text, again.out
    assert "ready in" not in again.text
