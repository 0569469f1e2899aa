"""Hand the CUDA caching allocator's unused memory back to the driver when a learner call ends.

Why: colocated on a GPU, the learners and the rollout engines take turns with the same memory. PyTorch's
caching allocator keeps every block a forward/backward, a log-prob pass or a weight transfer (the packed
IPC buffer is at least the largest tensor: 1-1.6 GB for a 7B-32B embedding) ever used, reserved for
this process although nothing holds it; vLLM's ``wake_up`` then has to map the engine's whole share again
next to it and runs out of memory. So each learner call that allocates returns its cache when it ends
(verl and OpenRLHF do the same around their rollout phase). On CPU this is a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def release_cuda_cache() -> float:
    """``torch.cuda.empty_cache()`` after the device's queued work; the bytes of reserved memory released
    (0 without CUDA)."""
    if not torch.cuda.is_available():
        return 0.0
    torch.cuda.synchronize()  # blocks still in use by queued kernels are not free yet
    before = torch.cuda.memory_reserved()
    torch.cuda.empty_cache()
    return float(before - torch.cuda.memory_reserved())


def releases_cuda_cache(method: F) -> F:
    """Decorator: run ``method``, then `release_cuda_cache` (also when it raised)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        finally:
            release_cuda_cache()

    return wrapper  # type: ignore[return-value]
