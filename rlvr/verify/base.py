"""The verifier contract: one sample in, one scored result out.

Kept deliberately small so that code sandboxes, model judges and reward composition can be added
on top of it without changing what a plugin has to implement: an object with a ``score`` method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["DEFAULT_BATCH_SIZE", "Verifier", "VerifyResult", "VerifySample", "batch_size_of", "scores_batches"]

DEFAULT_BATCH_SIZE = 32
"""Chunk size for a verifier that has ``score_batch`` but no ``batch_size``."""


@dataclass(frozen=True)
class VerifySample:
    """What a verifier sees of one rollout.

    ``finish_reason`` comes from the sampler ("stop" or "length"; None when unknown) so verifiers
    can refuse to reward a response that was cut off by the token limit. ``response_tokens`` is the
    response's length in policy tokens (None when unknown), for length-based reward terms.
    """

    prompt: str
    response: str
    ground_truth: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    response_tokens: int | None = None


@dataclass
class VerifyResult:
    """The reward for one sample, plus why.

    ``score`` is the reward fed to the algorithm; ``correct`` feeds accuracy metrics and is kept
    separate because shaped rewards (format bonuses, ±1 schemes) make "score > 0" ambiguous.
    ``details`` holds plain, picklable values (extracted answer, failure reason, elapsed_ms, ...).
    """

    score: float
    correct: bool
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Verifier(Protocol):
    """Anything with a ``score`` method. ``name`` is informative (logs, details); the registry and
    the pool identify a verifier by the key it is configured under, not by this attribute."""

    name: str

    def score(self, sample: VerifySample) -> VerifyResult: ...


def scores_batches(verifier: Any) -> bool:
    """Does ``verifier`` take whole chunks (an optional ``score_batch(samples)``, e.g. a model judge)?"""
    return callable(getattr(verifier, "score_batch", None))


def batch_size_of(verifier: Any) -> int:
    """How many samples one call may hand ``verifier``: 1 unless it scores batches, then its
    ``batch_size`` (default :data:`DEFAULT_BATCH_SIZE`).

    Raises:
        ValueError: ``batch_size`` is not a positive int.
    """
    if not scores_batches(verifier):
        return 1
    size = getattr(verifier, "batch_size", DEFAULT_BATCH_SIZE)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive int, got {size!r}")
    return size
