"""A training run whose reward composes a rule verifier with a model judge that rlvr serves itself.

The judge is the tiny model behind rlvr's own vLLM OpenAI-compatible server (a Ray actor with its own
CPU), reached by verifier workers through ``base_url: judge_server``. The tiny model cannot judge, so
its term has weight 0 and a verdict pattern that accepts any number it writes: the test is about the
wiring (start-up, URL and served name handed to the verifiers, the judge's score reported as a reward
term, clean shut-down), while tests/integration/test_judge_vllm.py covers the judge's parsing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlvr.config import dump_recipe, load_recipe
from rlvr.tracking import read_metrics
from rlvr.verify.judge_server import server_command
from rlvr.vllm_compat import vllm_build
from tests.conftest import DEFAULT_RECIPE, CliRun, processes_with, wait_for

STEPS = 2
SERVER = server_command("m", "127.0.0.1", 0, {}, vllm_build())[2]  # the module the judge's vLLM server runs


def _judge_recipe(tmp_path: Path, tiny_model: Path, steps: int) -> Path:
    recipe = yaml.safe_load(dump_recipe(load_recipe(DEFAULT_RECIPE, [
        f"run.steps={steps}", f"run.output_dir={tmp_path / 'runs'}", "rollout.prompts_per_step=16", "eval.data=[]",
        "logging.samples_per_step=4",
    ])))
    recipe["reward"].update({
        "verifier": "compose",
        "verifier_kwargs": {"terms": [
            {"name": "correct", "verifier": "exact_int"},
            {"name": "judge", "verifier": "judge", "weight": 0.0, "kwargs": {
                "base_url": "judge_server", "extract_answer": False, "prompt_template": "Q: {answer}+0=",
                "yes_pattern": r"\d", "allow_verdict_in_answer": True, "max_tokens": 4,
                "batch_size": 64, "deadline_s": 60}},
        ]},
        "timeout_s": 90,
        "judge_server": {"model": str(tiny_model), "num_cpus": 1, "vllm_args": {"max_model_len": 256},
                         "ready_timeout_s": 300},
    })
    path = tmp_path / "judge_recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_with_a_served_judge_term(tmp_path: Path, tiny_model: Path) -> None:
    path = _judge_recipe(tmp_path, tiny_model, STEPS)
    before = set(processes_with(SERVER))
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", str(path)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("done: "))
    assert "judge server " in proc.stdout and " at http://" in proc.stdout
    assert (run_dir / "logs" / "judge_server.log").is_file()

    train = read_metrics(run_dir, "train")
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    for row in train:
        assert row["reward/terms/correct"] == pytest.approx(row["reward/mean"])  # the judge weighs 0
        assert row["reward/terms/judge"] > 0.5  # the served model answered, and its numbers parsed as "yes"
        assert row["verify/errors"] == 0 and row["verify/timeouts"] == 0
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(set(s["details"]["terms"]) == {"correct", "judge"} for s in samples)
    assert {s["details"]["term_reasons"]["judge"] for s in samples} <= {"ok", "mismatch", "no_verdict"}
    assert set(processes_with(SERVER)) <= before  # the judge server went down with the run


def test_a_dead_judge_server_stops_the_run_within_seconds(tmp_path: Path, tiny_model: Path) -> None:
    """The judge's vLLM server dies mid-run (as on an out-of-memory kill): the run ends within seconds with an
    error naming the judge server and showing its log, like a dead engine, instead of scoring every sample
    as a verifier failure until the end."""
    run = CliRun([sys.executable, "-m", "rlvr.cli", "train", str(_judge_recipe(tmp_path, tiny_model, 200))])
    run.wait_line("step 1/")
    (server,) = [pid for pid in processes_with(SERVER) if pid not in processes_with("rlvr.verify.judge_server")]
    elapsed = run.killed_within(server, timeout_s=120)
    assert run.proc.returncode == 1, run.out
    assert elapsed < 30, elapsed
    error = run.text[run.text.index("error: "):]
    assert "judge server health: the judge's vLLM server died" in error and "judge_server.log" in error, error
    assert not any(line.startswith("step 200/") for line in run.lines)
    assert wait_for(lambda: not processes_with(SERVER), 30), processes_with(SERVER)  # nothing left behind
