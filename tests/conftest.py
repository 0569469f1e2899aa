"""Shared fixtures: paths to the shipped tiny model and data, and a GPU skip marker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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
