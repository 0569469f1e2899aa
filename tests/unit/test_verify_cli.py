"""``rlvr verify``: audit figures on a labelled file, JSON output, clear errors on bad input and on a
verifier that cannot be built (also in ``rlvr train``), and no process left holding the caller's output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlvr.cli import EXIT_VERIFIER_INIT, main
from rlvr.verify.audit import AuditError, read_cases
from tests.conftest import DEFAULT_RECIPE, running, wait_for

LABELLED = Path(__file__).resolve().parents[1] / "data" / "math_labelled.jsonl"

PLUGIN = """
import subprocess
import time
from pathlib import Path

from rlvr.verify import VerifyResult


class RaisesInInit:
    def __init__(self):
        raise RuntimeError("no model file at /nowhere")

    def score(self, sample):
        raise AssertionError("never built")


class TakesMode:
    def __init__(self, mode="exact"):
        self.mode = mode

    def score(self, sample):
        return VerifyResult(1.0, True, {})


class LeavesChildren:
    # one child in the worker's process group, one in a session of its own (out of reach of the group kill);
    # both inherit the worker's stdout and stderr. Their pids go to the file named by ground_truth.
    def score(self, sample):
        stays = subprocess.Popen(["sleep", "300"])
        escapes = subprocess.Popen(["sleep", "301"], start_new_session=True)
        Path(sample.ground_truth).write_text(f"{stays.pid} {escapes.pid}")
        while True:
            time.sleep(1)
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "cli_plugins.py"
    path.write_text(textwrap.dedent(PLUGIN))
    return path


def _rlvr_verify(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rlvr.cli", "verify", *args], capture_output=True, text=True,
                          timeout=timeout)


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_math_agrees_with_every_label_in_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    """The labels state the math verifier's rules, category by category (tests/data/make_math_labelled.py
    builds the file: equivalent forms, extraction anchors, thinking, continuation, hedging, truncation,
    several boxes, Unicode and notation, numeric tolerance, ...), each case with its reason."""
    assert main(["verify", "--verifier", "math", "--data", str(LABELLED), "--json", "--timeout", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"n", "agreement", "false_positives", "false_negatives", "timeouts", "errors", "p50_ms", "p99_ms",
            "max_ms"} <= set(report)
    assert report["n"] == sum(1 for line in LABELLED.read_text().splitlines() if line.strip()) >= 400
    assert report["disagreements"] == [], report["disagreements"]
    assert (report["agreement"], report["false_positives"], report["false_negatives"]) == (1.0, 0, 0)
    # the exponent tower is refused from its structure ("too_complex"), before sympy could hang on it
    assert (report["timeouts"], report["errors"]) == (0, 0)
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"] < 2000
    assert "cases" not in report


def test_counts_false_positives_and_negatives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.jsonl", [
        {"id": "fp", "completion": "\\boxed{4}", "ground_truth": "4", "expected": False},
        {"id": "fn", "completion": "it is 4", "ground_truth": "4", "expected": True},
        {"id": "ok", "completion": "\\boxed{5}", "ground_truth": "4", "expected": False, "prompt": "2+2?"},
        {"id": 7, "completion": "\\boxed{1/2}", "ground_truth": "0.5", "expected": True, "metadata": {"src": "x"}},
    ])
    assert main(["verify", "--verifier", "math", "--data", str(data), "--json", "--cases"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["false_positives"], report["false_negatives"], report["agreement"]) == (1, 1, 0.5)
    assert [c["id"] for c in report["disagreements"]] == ["fp", "fn"]
    assert [c["reason"] for c in report["cases"]] == ["ok", "no_answer", "mismatch", "ok"]
    assert report["cases"][3]["id"] == "7"
    assert main(["verify", "--verifier", "math", "--data", str(data), "--min-agreement", "0.9"]) == 1
    table = capsys.readouterr().out
    assert "agreement        50.0%" in table and "id=fp" in table


def test_kwargs_reach_the_verifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.jsonl", [{"completion": "I think it is 7", "ground_truth": "7", "expected": True}])
    assert main(["verify", "--verifier", "exact_int", "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement"] == 0.0
    assert main(["verify", "--verifier", "exact_int", "--kwargs", '{"mode": "last"}', "--data", str(data),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement"] == 1.0


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"completion": "x", "ground_truth": "1"}'], r":1: missing 'expected'"),
        (['{"completion": "x", "ground_truth": "1", "expected": "yes"}'], r":1: 'expected' must be bool"),
        (['{"completion": "x", "ground_truth": 1, "expected": true}'], r":1: 'ground_truth' must be str"),
        (['', '{"completion": "x", "ground_truth": "1", "expected": true, "label": 1}'],
         r":2: unknown keys \['label'\]"),
        (['{"completion": "x", "ground_truth": "1", "expected": true}', '{oops'], r":2: not valid JSON"),
        (['[1, 2]'], r":1: expected a JSON object, got list"),
        ([''], r"no cases"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditError, match=message):
        read_cases(path)


def test_cli_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "d.jsonl", [{"completion": "1", "ground_truth": "1", "expected": True}])
    assert main(["verify", "--verifier", "maths", "--data", str(data)]) == 2
    assert "unknown verifier 'maths'" in capsys.readouterr().err
    assert main(["verify", "--verifier", "math", "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["verify", "--verifier", "math", "--data", str(data), "--kwargs", "{bad"]) == 2
    assert "--kwargs is not valid JSON" in capsys.readouterr().err
    assert main(["verify", "--verifier", "math", "--data", str(data), "--kwargs", '{"nope": 1}']) == EXIT_VERIFIER_INIT
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("attr", "kwargs", "cause"),
    [
        ("RaisesInInit", "{}", "RuntimeError: no model file at /nowhere"),
        ("TakesMode", '{"nope": 1}', "TypeError: TakesMode.__init__() got an unexpected keyword argument 'nope'"),
    ],
)
def test_a_verifier_that_cannot_be_built_is_one_line_and_exit_3(
    tmp_path: Path, plugin: Path, attr: str, kwargs: str, cause: str
) -> None:
    data = _write(tmp_path / "d.jsonl", [{"completion": "1", "ground_truth": "1", "expected": True}])
    done = _rlvr_verify("--verifier", f"{plugin}:{attr}", "--kwargs", kwargs, "--data", str(data))
    assert done.returncode == EXIT_VERIFIER_INIT == 3, done.stderr  # 1 is a failed --min-agreement
    assert done.stderr == f"error: verifier '{plugin}:{attr}' could not be built: {cause}\n"
    assert "3 the verifier cannot be built or started" in " ".join(_rlvr_verify("--help").stdout.split())


def test_train_names_a_verifier_that_cannot_be_built(
    tmp_path: Path, plugin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real ``rlvr train`` path up to the verifier pool, which is built before Ray starts: one line naming
    the verifier, exit 2 (a bad recipe)."""
    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the verifiers were built")

    monkeypatch.setattr("rlvr.remote.init_ray", no_ray)
    spec = f"{plugin}:RaisesInInit"
    assert main(["train", str(DEFAULT_RECIPE), f"reward.verifier={spec}", f"run.output_dir={tmp_path}/runs"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: verifier '{spec}' could not be built: RuntimeError: no model file at /nowhere\n"


def test_a_verifier_that_leaves_children_does_not_hold_the_output_open(tmp_path: Path, plugin: Path) -> None:
    """The deadline kills the worker's process group, and no child a verifier starts has the caller's stdout or
    stderr: ``rlvr verify`` under ``capture_output`` returns once its own work is done."""
    pidfile = tmp_path / "pids"
    data = _write(tmp_path / "d.jsonl", [{"completion": "x", "ground_truth": str(pidfile), "expected": False}])
    start = time.monotonic()
    try:
        done = _rlvr_verify("--verifier", f"{plugin}:LeavesChildren", "--data", str(data), "--timeout", "1",
                            "--workers", "1", "--json", timeout=30)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["timeouts"] == 1
        assert time.monotonic() - start < 20
        stays, _ = (int(pid) for pid in pidfile.read_text().split())
        assert wait_for(lambda: not running(stays), 5.0)  # killed with the worker's group
    finally:
        for pid in (int(p) for p in pidfile.read_text().split()) if pidfile.exists() else ():
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_console_script() -> None:
    """The installed ``rlvr`` entry point runs the same command."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("rlvr")), "verify", "--verifier", "math", "--data", str(LABELLED),
         "--timeout", "2"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "agreement        100.0%" in done.stdout
