"""``rlvr verify``: audit figures on a labelled file, JSON output, and clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.verify.audit import AuditError, read_cases

LABELLED = Path(__file__).resolve().parents[1] / "data" / "math_labelled.jsonl"


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_math_agrees_with_every_label_in_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    """The labels state the math verifier's rules (equivalent forms, hedging, truncation, several boxes)."""
    assert main(["verify", "--verifier", "math", "--data", str(LABELLED), "--json", "--timeout", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"n", "agreement", "false_positives", "false_negatives", "timeouts", "errors", "p50_ms", "p99_ms",
            "max_ms"} <= set(report)
    assert report["n"] == sum(1 for line in LABELLED.read_text().splitlines() if line.strip())
    assert report["disagreements"] == [], report["disagreements"]
    assert (report["agreement"], report["false_positives"], report["false_negatives"]) == (1.0, 0, 0)
    assert report["timeouts"] == 1  # the exponent tower, stopped by the deadline
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert 2000 <= report["max_ms"] < 4000
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
    assert main(["verify", "--verifier", "math", "--data", str(data), "--kwargs", '{"nope": 1}']) == 2
    assert "nope" in capsys.readouterr().err


def test_console_script() -> None:
    """The installed ``rlvr`` entry point runs the same command."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("rlvr")), "verify", "--verifier", "math", "--data", str(LABELLED),
         "--timeout", "2"], capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "agreement        100.0%" in done.stdout
