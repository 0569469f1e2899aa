"""What a user meets at the console before and around a run: workers' output in their own files (Python and
C-level alike, teed back with --verbose), ``rlvr validate`` with overrides, ``rlvr train --dry-run``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.cli import main
from tests.conftest import DEFAULT_RECIPE, ROOT

_CHILD = """
import os, sys
sys.path.insert(0, {root!r})
from rlvr.worker_log import redirect_output
print("before")
assert redirect_output({path!r}, tee={tee})
print("python stdout")
print("python stderr", file=sys.stderr)
os.write(1, b"c-level fd 1\\n")
os.write(2, b"c-level fd 2\\n")
sys.stdout.flush()
import time; time.sleep(0.2)  # the tee thread copies before the process exits
"""


@pytest.mark.parametrize("tee", [False, True])
def test_a_workers_output_goes_to_its_file_and_with_tee_also_where_it_went(tmp_path: Path, tee: bool) -> None:
    path = tmp_path / "logs" / "rollout-0.log"
    code = _CHILD.format(root=str(ROOT), path=str(path), tee=tee)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    written = path.read_text()
    for line in ("python stdout", "python stderr", "c-level fd 1", "c-level fd 2"):
        assert line in written
        assert (line in proc.stdout + proc.stderr) == tee  # the console (Ray's log) sees it only with tee
    assert "before" in proc.stdout and "before" not in written


def test_a_log_path_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    from rlvr.worker_log import redirect_output, role_log

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert not redirect_output(str(blocker / "logs" / "x.log"))  # a file where the folder should be
    assert not redirect_output(None)
    assert role_log(None, "rollout", 0) is None
    assert role_log(tmp_path, "learner", 3) == str(tmp_path / "learner-3.log")


def test_validate_takes_overrides_like_train(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DEFAULT_RECIPE), "rollout.n=4", "algorithm.lr=1e-5"]) == 0
    assert main(["validate", str(DEFAULT_RECIPE), "rollout.n=1"]) == 1  # GRPO needs a group
    err = capsys.readouterr().err
    assert "rollout.n must be >= 2" in err
    assert main(["validate", "rollout.n=4"]) == 2
    assert "no recipe file given" in capsys.readouterr().err
    assert main(["validate", str(DEFAULT_RECIPE), "no.such.key=1"]) == 1
    assert "no: unknown key" in capsys.readouterr().err


def test_dry_run_plans_without_starting_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    assert main(["train", str(DEFAULT_RECIPE), f"run.output_dir={out}", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"run directory: {out}/tiny_arith_grpo" in text
    assert "train data train: 9500 prompts" in text and "eval data heldout: 500 prompts" in text
    assert "example prompt (" in text and "  | Q: " in text  # the templated prompt as the model sees it
    assert "each step: 64 prompts x 8 samples = 512 responses" in text
    assert "placement: CPU: 2 actor(s)" in text and text.rstrip().endswith("nothing was started or written")
    assert not out.exists()  # nothing written

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Q: 1+1=", "answer": "2"}\n{"question": "no prompt"}\n')
    assert main(["train", str(DEFAULT_RECIPE), f"data.train=[{{path: {bad}}}]", "eval.data=[]", "--dry-run"]) == 0
    assert "1 prompts (dropped: " in capsys.readouterr().out
