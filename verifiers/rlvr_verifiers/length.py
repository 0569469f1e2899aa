"""Length penalty as a reward term: DAPO's soft overlong punishment, or a cap relative to a budget.

DAPO (Yu et al., 2025, eq. 13) penalises a response linearly over the last ``buffer`` tokens before
the limit and by the full amount past it, so the policy learns to finish before the cut-off instead of
being rewarded for answers that happened to fit. As a verifier term it composes with correctness
through :class:`rlvr_verifiers.compose.WeightedSum`.
"""

from __future__ import annotations

from typing import Literal

from rlvr.verify.base import VerifyResult, VerifySample

__all__ = ["LengthPenalty"]


class LengthPenalty:
    """0 for responses within budget, falling linearly to -1 over the buffer before ``max_length``.

    ``R = 0`` if ``L <= max_length - buffer``; ``(max_length - buffer - L) / buffer`` if
    ``max_length - buffer < L <= max_length``; ``-1`` beyond (and for a truncated response). ``unit``
    is "tokens" (needs ``response_tokens`` from the sampler, which rlvr always fills) or "chars".
    ``correct`` is True when there is no penalty, so an accuracy column of this term reads as "share of
    responses within budget".

    details: ``length``, ``reason`` ("ok", "soft_overlong", "overlong", "truncated").
    """

    name = "length_penalty"

    def __init__(self, max_length: int, buffer: int, unit: Literal["tokens", "chars"] = "tokens") -> None:
        if not 0 < buffer <= max_length:
            raise ValueError(f"need 0 < buffer <= max_length, got buffer={buffer}, max_length={max_length}")
        if unit not in ("tokens", "chars"):
            raise ValueError(f"unit must be 'tokens' or 'chars', got {unit!r}")
        self.max_length = max_length
        self.buffer = buffer
        self.unit = unit

    def score(self, sample: VerifySample) -> VerifyResult:
        if self.unit == "tokens":
            if sample.response_tokens is None:
                raise ValueError("length_penalty with unit='tokens' needs VerifySample.response_tokens")
            length = sample.response_tokens
        else:
            length = len(sample.response)
        start = self.max_length - self.buffer
        if sample.finish_reason == "length":
            penalty, reason = -1.0, "truncated"
        elif length <= start:
            penalty, reason = 0.0, "ok"
        elif length <= self.max_length:
            penalty, reason = (start - length) / self.buffer, "soft_overlong"
        else:
            penalty, reason = -1.0, "overlong"
        return VerifyResult(penalty, penalty == 0.0, {"length": length, "reason": reason})
