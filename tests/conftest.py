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


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return TINY / "model"


@pytest.fixture(scope="session")
def tiny_data() -> Path:
    return TINY / "data"


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
