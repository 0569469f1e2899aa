"""Checkpoint bookkeeping without engines: complete-or-invisible folders, keep-last-K, resume lookup,
refused recipe changes, data position across epoch boundaries, cut logs, the NaN guard and preemption."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from rlvr import preemption
from rlvr.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    complete_checkpoints,
    config_changes,
    find_checkpoint,
    read_state,
    training_config,
)
from rlvr.config import load_recipe
from rlvr.data.dataset import DataError, PromptRow, PromptSampler
from rlvr.session import TrainingDiverged, UpdateGuard
from rlvr.tracking import OutputError, open_run_dir
from tests.conftest import DEFAULT_RECIPE, ROOT

LORA_RECIPE = ROOT / "recipes" / "tiny_arith_grpo_lora.yaml"


def _save(writer: CheckpointWriter, step: int) -> Path:
    tmp = writer.begin(step)
    (tmp / "learner").mkdir()
    return writer.commit(tmp, step, {"step": step})


def test_only_complete_checkpoints_count_and_the_last_k_are_kept(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, keep=2)
    for step in (2, 4, 6):
        _save(writer, step)
    assert [c.name for c in complete_checkpoints(tmp_path)] == ["step_000004", "step_000006"]
    half = writer.begin(8)  # killed while saving step 8
    (half / "learner").mkdir()
    (tmp_path / "checkpoints" / "step_000010").mkdir()  # a folder without its marker
    assert find_checkpoint(tmp_path).name == "step_000006"
    assert read_state(find_checkpoint(tmp_path)) == {"step": 6}
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        find_checkpoint(tmp_path / "checkpoints" / "step_000010")
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        find_checkpoint(half)
    with pytest.raises(CheckpointError, match="no complete checkpoint in"):
        find_checkpoint(tmp_path / "elsewhere")
    _save(writer, 8)  # the next save clears the leftover
    assert not half.exists()
    assert [c.name for c in complete_checkpoints(tmp_path)] == ["step_000006", "step_000008"]


def test_a_resumed_recipe_may_change_how_it_runs_not_what_it_trains() -> None:
    saved = training_config(load_recipe(DEFAULT_RECIPE))
    fine = load_recipe(DEFAULT_RECIPE, ["run.steps=99", "checkpoint.interval=5", "ray.call_timeout_s=60",
                                        "reward.num_workers=4", "rollout.num_engines=2", "eval.interval=0"])
    assert config_changes(saved, fine) == []
    changed = load_recipe(DEFAULT_RECIPE, ["algorithm.lr=1e-3", "rollout.n=4", "data.shuffle=false"])
    assert config_changes(saved, changed) == [
        f"algorithm.lr: {saved['algorithm.lr']!r} -> 0.001", "data.shuffle: True -> False",
        f"rollout.n: {saved['rollout.n']!r} -> 4"]


def _rows(n: int) -> list[PromptRow]:
    return [PromptRow(f"Q{i}", [i], str(i), None, "d") for i in range(n)]


@pytest.mark.parametrize("taken", [0, 3, 8, 10, 16, 17])  # 8 rows: 8 and 16 are epoch boundaries
def test_sampler_resumes_exactly_across_epochs(taken: int) -> None:
    straight = PromptSampler(_rows(8), shuffle=True, seed=5)
    straight.next_batch(taken) if taken else None
    state = json.loads(json.dumps(straight.state_dict()))  # as stored in trainer_state.json
    resumed = PromptSampler(_rows(8), shuffle=True, seed=5)
    resumed.load_state_dict(state)
    assert [r.answer for r in resumed.next_batch(20)] == [r.answer for r in straight.next_batch(20)]
    assert resumed.epoch == straight.epoch


def test_sampler_refuses_other_data() -> None:
    state = PromptSampler(_rows(8), shuffle=True, seed=5).state_dict()
    other = _rows(8)
    other[3] = PromptRow("Q3", [3], "not 3", None, "d")
    with pytest.raises(DataError, match="differ from the checkpoint"):
        PromptSampler(other, shuffle=True, seed=5).load_state_dict(state)


def test_resume_auto_cuts_rows_logged_after_the_checkpoint(tmp_path: Path) -> None:
    cfg = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp_path}", "run.name=r"])
    run, ckpt = open_run_dir(cfg, "auto")  # nothing yet: a fresh start in output_dir/name
    assert run == tmp_path / "r" and ckpt is None
    _save(CheckpointWriter(run, keep=2), 2)
    rows = [{"step": s, "kind": "train"} for s in (1, 2, 3)] + [{"step": 2, "kind": "eval"}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "kin')
    run2, ckpt2 = open_run_dir(cfg, "auto")
    assert run2 == run and ckpt2 is not None and ckpt2.name == "step_000002"
    kept = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert kept == [{"step": 1, "kind": "train"}, {"step": 2, "kind": "train"}, {"step": 2, "kind": "eval"}]
    assert open_run_dir(cfg, str(run))[1] == ckpt2  # a run directory: its latest checkpoint


def test_update_guard_aborts_after_consecutive_skipped_steps() -> None:
    guard = UpdateGuard(limit=2)
    guard.check(1, {"actor/skipped_updates": 1.0, "actor/optimizer_steps": 2.0})  # one of two skipped: fine
    guard.check(2, {"actor/skipped_updates": 2.0, "actor/optimizer_steps": 2.0})
    guard.check(3, {"actor/skipped_updates": 0.0, "actor/optimizer_steps": 2.0})  # recovered: count resets
    guard.check(4, {"actor/skipped_updates": 2.0, "actor/optimizer_steps": 2.0})
    with pytest.raises(TrainingDiverged, match=r"step 5: every actor update of the last 2 steps.*\(7 skipped in all"):
        guard.check(5, {"actor/skipped_updates": 2.0, "actor/optimizer_steps": 2.0})


def test_update_guard_counts_each_role_alone() -> None:
    """PPO: a policy whose every update is skipped must stop the run while the critic keeps training (the
    sum over roles, 2 skipped of 4, hid it)."""
    guard = UpdateGuard(limit=3)
    diverged = {"actor/skipped_updates": 2.0, "actor/optimizer_steps": 2.0,
                "critic/skipped_updates": 0.0, "critic/optimizer_steps": 2.0}
    guard.check(1, diverged)
    guard.check(2, diverged)
    with pytest.raises(TrainingDiverged, match=r"step 3: every actor update of the last 3 steps.*\(6 skipped in all"):
        guard.check(3, diverged)
    critic_only = UpdateGuard(limit=2)  # and the other way round
    critic_only.check(1, {"actor/skipped_updates": 0.0, "actor/optimizer_steps": 1.0,
                          "critic/skipped_updates": 1.0, "critic/optimizer_steps": 1.0})
    with pytest.raises(TrainingDiverged, match="every critic update"):
        critic_only.check(2, {"actor/skipped_updates": 0.0, "actor/optimizer_steps": 1.0,
                              "critic/skipped_updates": 1.0, "critic/optimizer_steps": 1.0})


def test_first_signal_in_the_loop_is_deferred_a_second_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with preemption.preemptible():
        with pytest.raises(preemption.Preempted, match="SIGTERM"):  # outside the loop: at once
            os.kill(os.getpid(), signal.SIGTERM)
    with preemption.preemptible(), preemption.deferred():
        os.kill(os.getpid(), signal.SIGUSR1)
        assert preemption.requested() == signal.SIGUSR1  # recorded, not raised
        os.kill(os.getpid(), signal.SIGTERM)  # at once: the same request forwarded by a batch script
        preemption._requested_at -= preemption.SAME_REQUEST_S  # later: a second request
        with pytest.raises(preemption.Preempted, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored on the way out
    assert preemption.requested() is None  # and the request gone: a later run in this process is not stopped


def test_an_unwritable_output_dir_is_reported_before_anything_starts(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={blocker}"])
    with pytest.raises(OutputError, match=rf"cannot write the run directory {blocker}/tiny_arith_grpo"):
        open_run_dir(cfg, None)
    with pytest.raises(OutputError, match="cannot write the run directory"):
        open_run_dir(cfg, "auto")


def test_disk_space_is_checked_against_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from rlvr.session import CHECKPOINT_BYTES_PER_PARAM, Session
    from rlvr.tracking import RunLog

    session = Session(load_recipe(DEFAULT_RECIPE, ["checkpoint.keep=3"]))
    session.run_dir = tmp_path
    session.log = RunLog(tmp_path, 1, out=sys.stdout)  # capsys's stdout
    free = shutil.disk_usage(tmp_path).free
    session._check_disk(free // 2)  # fits once, not keep + 1 times
    assert "warning:" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="GiB free, but one checkpoint needs about"):
        session._check_disk(free * 2)
    session.log.close()

    # what one checkpoint takes: every parameter in full; with LoRA the adapter (plus a merged export if asked)
    info = {"params": 7_000_000_000, "trainable_params": 40_000_000}
    session.critic = None
    assert session._checkpoint_bytes(info) == 7_000_000_000 * CHECKPOINT_BYTES_PER_PARAM
    session.cfg = load_recipe(LORA_RECIPE)
    assert session._checkpoint_bytes(info) == 40_000_000 * CHECKPOINT_BYTES_PER_PARAM
    session.cfg = load_recipe(LORA_RECIPE, ["checkpoint.merge_lora=true"])
    assert session._checkpoint_bytes(info) == 40_000_000 * CHECKPOINT_BYTES_PER_PARAM + 7_000_000_000 * 4


def test_a_refused_resume_changes_nothing_in_the_run_dir(tmp_path: Path) -> None:
    from rlvr.session import Session

    cfg = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp_path}", "run.name=r"])
    run = tmp_path / "r"
    run.mkdir()
    tmp = CheckpointWriter(run, keep=2).begin(2)
    CheckpointWriter(run, keep=2).commit(tmp, 2, {"step": 2, "config": training_config(cfg)})
    (run / "config.yaml").write_text("original\n")
    (run / "metrics.jsonl").write_text('{"step": 3, "kind": "train"}\n')
    other = load_recipe(DEFAULT_RECIPE, [f"run.output_dir={tmp_path}", "run.name=r", "algorithm.lr=0.1"])
    with pytest.raises(CheckpointError, match=r"the recipe changed .*algorithm.lr: .* -> 0.1"):
        with Session(other, resume="auto"):
            pass
    assert (run / "config.yaml").read_text() == "original\n"
    assert (run / "metrics.jsonl").read_text() == '{"step": 3, "kind": "train"}\n'
