"""Shared fixtures: paths to the shipped tiny model and data, and a GPU skip marker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "rlvr" / "assets" / "tiny_arith"
DEFAULT_RECIPE = ROOT / "recipes" / "tiny_arith_grpo.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    from tests.controls import CONTROLS

    parser.addoption(
        "--control", choices=sorted(CONTROLS), default=None,
        help="run the tests marked `controlled` (hand-computed loss contracts and learning checks) with this "
             "deliberate defect applied (tests/controls.py); they must fail. Other tests are deselected.")


@pytest.fixture(scope="session")
def control(request: pytest.FixtureRequest) -> str | None:
    """The negative control of this session (``pytest --control NAME``), or None."""
    return request.config.getoption("--control")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    name = config.getoption("--control")
    if name is not None:  # keep only the checks the control is meant to break
        from tests.controls import CONTROLS

        def breaks(item: pytest.Item) -> bool:
            preset = getattr(item, "callspec", None) and item.callspec.params.get("preset")
            return item.get_closest_marker("controlled") is not None and (
                preset is None or preset in CONTROLS[name].presets)

        dropped = [item for item in items if not breaks(item)]
        items[:] = [item for item in items if breaks(item)]
        config.hook.pytest_deselected(items=dropped)
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say how many GPU tests did not run here, so a green CPU run is not read as a GPU check."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "gpu" in getattr(r, "keywords", {})]
    if skipped:
        terminalreporter.write_line(f"GPU tests: {len(skipped)} skipped (no CUDA GPU on this machine); they run on a "
                                    "GPU machine (pytest tests/gpu)", yellow=True)


def build_twice(build: Callable[[Path], Any], folder: Path, files: tuple[str, ...]) -> dict[str, Any]:
    """Run a tiny-model builder into ``folder/a`` and ``folder/b`` (restoring torch's thread count, which the
    builders set) and assert the two models are identical: weights bit for bit and ``files`` byte for byte.
    Returns build a's weights."""
    import torch
    from safetensors.torch import load_file

    threads = torch.get_num_threads()
    try:
        for name in ("a", "b"):
            build(folder / name)
    finally:
        torch.set_num_threads(threads)
    wa = load_file(str(folder / "a" / "model" / "model.safetensors"))
    wb = load_file(str(folder / "b" / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for f in files:
        assert (folder / "a" / "model" / f).read_bytes() == (folder / "b" / "model" / f).read_bytes(), f
    return wa


def first_train_rows(folder: Path, k: int) -> Path:
    """A ``.jsonl`` in ``folder`` with the tiny task's first ``k`` training rows (a small data set whose
    epochs turn over within a few steps)."""
    path = folder / f"first_{k}.jsonl"
    path.write_text("\n".join((TINY / "data" / "train.jsonl").read_text().splitlines()[:k]) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return TINY / "model"


@pytest.fixture(scope="session")
def tiny_data() -> Path:
    return TINY / "data"


def tied_tiny_model(source: str, out: Path) -> Path:
    """A copy of a model (the tiny default) with its output layer tied to the input embedding
    (``tie_word_embeddings``), written to ``out``: the weight sync's harder case."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def grad_rel(a: dict[str, Any], b: dict[str, Any]) -> float:
    """``|b - a| / |a|`` over all of ``a``'s gradients as one float64 vector (``a`` must have a gradient)."""
    import torch

    va = torch.cat([a[k].flatten().double() for k in sorted(a)])
    vb = torch.cat([b[k].flatten().double() for k in sorted(a)])
    assert va.norm() > 0
    return ((va - vb).norm() / va.norm()).item()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` every 0.1 s until it holds or ``timeout_s`` passes; its last value."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def running(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not an unreaped zombie)?"""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def processes_with(text: str) -> list[int]:
    """PIDs of the live processes whose command line contains ``text``."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if text in " ".join(proc.info["cmdline"] or []) and running(proc.pid):
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


ARITH_GROUPS = [("Q: 57+68=", ["125", "15", "125", "1"]), ("Q: 38+45=", ["83", "73", "8", "783"])]
"""Two carry problems, each with four ragged answers (right ones and the tiny model's typical mistakes)."""


def _alternating(k: int, t: int) -> float:
    return 1.0 if k % 2 == 0 else -1.0


def arith_rows(tokenizer: Any, advantage: Callable[[int, int], float] = _alternating) -> Any:
    """`TrainRows` of `ARITH_GROUPS` (2 groups of 4 responses ending in EOS); ``advantage(k, t)`` of answer k's
    token t (default +1 for even k, -1 for odd)."""
    from rlvr.learner.batch import TrainRows

    ids, plens, adv = [], [], []
    for prompt, answers in ARITH_GROUPS:
        p = tokenizer(prompt)["input_ids"]
        for k, answer in enumerate(answers):
            r = tokenizer(answer)["input_ids"] + [tokenizer.eos_token_id]
            ids.append(p + r)
            plens.append(len(p))
            adv.append([advantage(k, t) for t in range(len(r))])
    return TrainRows(input_ids=ids, prompt_lens=plens, advantages=adv)


class CliRun:
    """A process (``rlvr train ...``) in its own session, its output lines collected as they come."""

    def __init__(self, cmd: list[str]) -> None:
        import subprocess
        import threading

        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def wait_line(self, prefix: str, timeout_s: float = 600) -> None:
        """Until a line starts with ``prefix``; fails (with the output) if the process ends first."""
        assert wait_for(lambda: any(line.startswith(prefix) for line in self.lines) or self.proc.poll() is not None,
                        timeout_s), self.out
        assert any(line.startswith(prefix) for line in self.lines), self.out

    def finish(self, timeout_s: float = 600) -> int:
        """The exit code; the process group is killed if it has not ended within ``timeout_s``."""
        import os
        import signal
        import subprocess

        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.proc.returncode

    def killed_within(self, victim: int, timeout_s: float = 60) -> float:
        """SIGKILL ``victim`` (a worker of this run); seconds until the run itself ended."""
        import os
        import signal

        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        self.finish(timeout_s)
        return time.monotonic() - killed_at

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def out(self) -> str:  # for failure messages
        return self.text[-4000:]
