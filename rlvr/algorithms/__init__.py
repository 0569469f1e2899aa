"""Loss modules. Pick one by name (`ALGORITHM_NAMES`) or by import path; see `registry`."""

from rlvr.algorithms.registry import ALGORITHM_NAMES, get_algorithm

__all__ = ["ALGORITHM_NAMES", "get_algorithm"]
