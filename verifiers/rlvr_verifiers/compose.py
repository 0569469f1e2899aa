"""Reward composition: a weighted sum of verifier terms (correctness, format, length penalty, ...).

Recipes in this field shape rewards as ``correctness + a * format + b * length_penalty``; writing a
new verifier for every combination hides the weights in code. Here each term is an ordinary verifier
(any name or import path), the weights live in the recipe, and every term's score is kept in the
result's details so the logs show which part of the reward moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.verify.base import Verifier, VerifyResult, VerifySample, batch_size_of, scores_batches
from rlvr.verify.registry import load_verifier

__all__ = ["WeightedSum"]

_TERM_KEYS = {"name", "verifier", "kwargs", "weight"}


@dataclass
class _Term:
    name: str
    verifier: Verifier
    weight: float


class WeightedSum:
    """``score = sum(weight_i * score_i)`` over the terms; ``correct`` comes from one term.

    Args:
        terms: ``[{name, verifier, kwargs={}, weight=1.0}, ...]``; ``verifier`` is an entry-point name,
            ``package.module:attr`` or ``path/to/file.py:attr`` (absolute, or relative to the working
            directory; recipes make theirs absolute).
        correct_from: the term whose ``correct`` (and ``extracted``/``reason``) the result reports;
            default the first term.
        requires: terms that must be correct for the sum to count; if one is not, the score is
            ``fail_score`` (R1-Zero style: a malformed response earns the penalty, whatever it says).
        fail_score: the score when a required term fails (default: the sum anyway, i.e. no gate).

    Terms that score batches (model judges) are called with the whole chunk; ``batch_size`` is the
    largest of theirs, or 1 when no term batches (then the pool's deadline applies per sample).

    details: the ``correct_from`` term's details, plus ``terms`` (``{name: score}``), ``term_reasons``
    (``{name: reason}``) and ``gated``.
    """

    name = "compose"

    def __init__(
        self,
        terms: Sequence[Mapping[str, Any]],
        correct_from: str | None = None,
        requires: Sequence[str] = (),
        fail_score: float | None = None,
    ) -> None:
        if not terms:
            raise ValueError("compose needs at least one term")
        self.terms: list[_Term] = []
        for i, term in enumerate(terms):
            if not isinstance(term, Mapping) or "verifier" not in term:
                raise ValueError(f"compose term {i} must be a mapping with a 'verifier' key, got {term!r}")
            unknown = set(term) - _TERM_KEYS
            if unknown:
                raise ValueError(f"compose term {i}: unknown keys {sorted(unknown)}; valid: {sorted(_TERM_KEYS)}")
            name = str(term.get("name", term["verifier"]))
            if any(t.name == name for t in self.terms):
                raise ValueError(f"compose: two terms are named {name!r}; give them distinct 'name's")
            verifier = load_verifier(str(term["verifier"]), term.get("kwargs") or {})
            self.terms.append(_Term(name, verifier, float(term.get("weight", 1.0))))
        names = [t.name for t in self.terms]
        self.correct_from = correct_from if correct_from is not None else names[0]
        missing = ({self.correct_from} | set(requires)) - set(names)
        if missing:
            raise ValueError(f"compose: {sorted(missing)} are not terms; terms are {names}")
        if requires and fail_score is None:
            raise ValueError("compose: 'requires' needs a 'fail_score'")
        self.requires = tuple(requires)
        self.fail_score = fail_score
        self.batch_size = max(batch_size_of(t.verifier) for t in self.terms)

    def check(self) -> None:
        """Run the start-up checks of the terms that have one (e.g. a model judge's endpoint probe)."""
        for term in self.terms:
            if callable(getattr(term.verifier, "check", None)):
                term.verifier.check()

    def score(self, sample: VerifySample) -> VerifyResult:
        return self.score_batch([sample])[0]

    def score_batch(self, samples: Sequence[VerifySample]) -> list[VerifyResult]:
        per_term = {t.name: _score_all(t.verifier, samples) for t in self.terms}
        return [self._combine({name: results[i] for name, results in per_term.items()}) for i in range(len(samples))]

    def _combine(self, parts: dict[str, VerifyResult]) -> VerifyResult:
        main = parts[self.correct_from]
        total = sum(t.weight * parts[t.name].score for t in self.terms)
        gated = any(not parts[name].correct for name in self.requires)
        details = dict(main.details)
        details["terms"] = {name: r.score for name, r in parts.items()}
        details["term_reasons"] = {name: r.details.get("reason") for name, r in parts.items()}
        details["gated"] = gated
        if gated:
            failed = [name for name in self.requires if not parts[name].correct]
            details["reason"] = f"failed_{failed[0]}"
        score = float(self.fail_score) if gated and self.fail_score is not None else total
        return VerifyResult(score, main.correct and not gated, details)


def _score_all(verifier: Any, samples: Sequence[VerifySample]) -> list[VerifyResult]:
    if scores_batches(verifier) and len(samples) > 1:
        results = list(verifier.score_batch(samples))
        if len(results) != len(samples):
            raise ValueError(f"{type(verifier).__name__}.score_batch returned {len(results)} for {len(samples)}")
        return results
    return [verifier.score(s) for s in samples]
