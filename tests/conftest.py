"""Shared fixtures: paths to the shipped tiny model and data, and a GPU skip marker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "rlvr" / "assets" / "tiny_arith"
DEFAULT_RECIPE = ROOT / "recipes" / "tiny_arith_grpo.yaml"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip)


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
