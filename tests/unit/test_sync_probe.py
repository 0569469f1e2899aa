"""The sync probe's sequences, thresholds and verdicts (the real engines are in test_weight_sync)."""

from __future__ import annotations

import pytest

from rlvr.config import load_recipe
from rlvr.sync_probe import ProbeMismatch, SyncProbe, probe_rows
from rlvr.weight_sync import WeightSyncError
from tests.conftest import DEFAULT_RECIPE


def test_probe_rows_score_the_last_tokens_of_the_first_prompts() -> None:
    rows = probe_rows([[7], [1, 2, 3, 4, 5], [1, 2], [9, 9, 9]], sequences=2, tokens=3)
    assert rows is not None and rows.input_ids == [[1, 2, 3, 4, 5], [1, 2]]  # one-token prompts cannot be scored
    assert rows.prompt_lens == [2, 1]  # 3 positions of the first, the 1 there is of the second
    assert probe_rows([[5]], 4, 8) is None


@pytest.mark.parametrize(("dtype", "override", "threshold"), [
    ("float32", [], 1e-3), ("bfloat16", [], 1.0), ("float32", ["rollout.sync_probe.max_abs_diff=0.05"], 0.05),
])
def test_thresholds(dtype: str, override: list[str], threshold: float) -> None:
    cfg = load_recipe(DEFAULT_RECIPE, override)
    probe = SyncProbe.build(cfg.rollout.sync_probe, dtype, [[1, 2, 3]])
    assert probe is not None and probe.threshold == threshold


def test_switched_off() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["rollout.sync_probe.enabled=false"])
    assert SyncProbe.build(cfg.rollout.sync_probe, "float32", [[1, 2, 3]]) is None


class _Remote:
    def __init__(self, value: list[list[float]]) -> None:
        self.value = value

    def remote(self, *args: object) -> list[list[float]]:
        return self.value


class _Engine:
    def __init__(self, value: list[list[float]]) -> None:
        self.sequence_logprobs = _Remote(value)


class _Rollouts:
    timeout_s = 5.0

    def __init__(self, *values: list[list[float]]) -> None:
        self.workers = [_Engine(v) for v in values]


class _Learners:
    def compute_logprobs(self, rows: object, which: str) -> list[list[float]]:
        return [[-1.0, -2.0]]


def test_verdicts_name_the_engines_that_left_the_learner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rlvr.sync_probe.wait", lambda refs, timeout, what: refs)
    probe = SyncProbe(probe_rows([[1, 2, 3]], 1, 2), threshold=1e-3)
    ok = probe.check(_Learners(), _Rollouts([[-1.0, -2.0005]], [[-1.0, -2.0]]), version=3)
    assert ok["sync/logprob_max_abs_diff"] == pytest.approx(5e-4)
    with pytest.raises(ProbeMismatch, match=r"version 4: rollout engine 1 \(max \|diff\| 0\.7\)") as err:
        probe.check(_Learners(), _Rollouts([[-1.0, -2.0]], [[-1.7, -2.0]]), version=4)
    assert isinstance(err.value, WeightSyncError) and "engine 0" not in str(err.value)


def test_a_failed_probe_stops_rlvr_train_with_its_message(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rlvr import trainer
    from rlvr.cli import main

    def train(cfg: object, resume: object) -> None:
        raise ProbeMismatch("weight sync check failed at version 7: rollout engine 1 (max |diff| 2.5) ...")

    monkeypatch.setattr(trainer, "train", train)
    assert main(["train", str(DEFAULT_RECIPE)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weight sync check failed at version 7: rollout engine 1") and "Traceback" not in err
