"""Audit a verifier against labelled completions: how often does it agree with a human (or a trusted
grader), where does it err, and how fast and how safely does it run?

A reward is only as good as its verifier, and a verifier's failure modes (false positives the policy
will learn to exploit, false negatives that starve it of signal, timeouts) are invisible in training
curves. ``rlvr verify`` runs the verifier exactly as training does, through :class:`VerifierPool`
with its deadline, so the latencies and failures reported are the ones a run would see.

Input: JSON lines, one case each: ``completion`` and ``ground_truth`` (strings), ``expected``
(true/false: should the verifier call it correct?), optional ``prompt``, ``id``, ``finish_reason``,
``reason`` and ``category`` (why the label is what it is, and its group: documentation, not read),
and ``metadata`` (an object).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr.verify.pool import DEFAULT_WORKER_MEMORY_GIB, VerifierPool, VerifierSpec

__all__ = ["AuditCase", "AuditError", "audit", "format_report", "read_cases"]

_REQUIRED = {"completion": str, "ground_truth": str, "expected": bool}
_OPTIONAL = {"prompt": str, "id": (str, int), "finish_reason": (str, type(None)), "metadata": dict,
             "reason": str, "category": str}


class AuditError(ValueError):
    """The labelled file is malformed; the message names the line and the field."""


@dataclass(frozen=True)
class AuditCase:
    id: str
    sample: VerifySample
    expected: bool


def read_cases(path: str | Path) -> list[AuditCase]:
    """Parse and check every line before anything runs, so a typo on line 900 costs no verification."""
    path = Path(path)
    if not path.is_file():
        raise AuditError(f"{path}: no such file")
    cases: list[AuditCase] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise AuditError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
            cases.append(_case(record, f"{path}:{lineno}", default_id=str(lineno)))
    if not cases:
        raise AuditError(f"{path}: no cases (expected one JSON object per line)")
    return cases


def _case(record: Any, where: str, default_id: str) -> AuditCase:
    if not isinstance(record, dict):
        raise AuditError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key, kind in _REQUIRED.items():
        if key not in record:
            raise AuditError(f"{where}: missing {key!r} (required: {', '.join(_REQUIRED)})")
        if not isinstance(record[key], kind):
            raise AuditError(f"{where}: {key!r} must be {kind.__name__}, got {type(record[key]).__name__}")
    unknown = set(record) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise AuditError(f"{where}: unknown keys {sorted(unknown)}; allowed: {', '.join([*_REQUIRED, *_OPTIONAL])}")
    for key, kind in _OPTIONAL.items():
        if key in record and not isinstance(record[key], kind):
            raise AuditError(f"{where}: {key!r} has the wrong type ({type(record[key]).__name__})")
    sample = VerifySample(
        prompt=record.get("prompt", ""), response=record["completion"], ground_truth=record["ground_truth"],
        metadata=record.get("metadata", {}), finish_reason=record.get("finish_reason", "stop"),
    )
    return AuditCase(str(record.get("id", default_id)), sample, record["expected"])


def audit(
    cases: list[AuditCase], verifier: VerifierSpec, num_workers: int = 2, timeout_s: float = 10.0,
    base_dir: str | Path | None = None, worker_memory_gib: float | None = DEFAULT_WORKER_MEMORY_GIB,
    log_path: str | Path | None = None,
) -> dict[str, Any]:
    """Score every case through a :class:`VerifierPool` and summarise (see :func:`summarise`)."""
    with VerifierPool({"audit": verifier}, num_workers=num_workers, timeout_s=timeout_s, base_dir=base_dir,
                      worker_memory_gib=worker_memory_gib, log_path=log_path) as pool:
        results = pool.score_batch([c.sample for c in cases], ["audit"] * len(cases))
    return summarise(cases, results)


def summarise(cases: list[AuditCase], results: list[VerifyResult], slowest: int = 5) -> dict[str, Any]:
    """Agreement with the labels, the two kinds of error, failures and latency percentiles.

    ``false_positives``: judged correct, labelled wrong (what a policy learns to exploit);
    ``false_negatives``: judged wrong, labelled correct (lost signal). Timeouts and errors count as
    "judged wrong" in agreement, as they do in training.
    """
    latencies = sorted(float(r.details.get("elapsed_ms", 0.0)) for r in results)
    per_case = [
        {"id": c.id, "expected": c.expected, "correct": r.correct, "score": r.score, "agree": r.correct == c.expected,
         "reason": r.details.get("reason"), "extracted": r.details.get("extracted"),
         "elapsed_ms": float(r.details.get("elapsed_ms", 0.0))}
        for c, r in zip(cases, results)
    ]
    reasons = [str(p["reason"] or "") for p in per_case]
    n = len(cases)
    return {
        "n": n,
        "agreement": sum(p["agree"] for p in per_case) / n,
        "false_positives": sum(p["correct"] and not p["expected"] for p in per_case),
        "false_negatives": sum(p["expected"] and not p["correct"] for p in per_case),
        "timeouts": sum(r == "timeout" for r in reasons),
        "errors": sum(r == "crash" or r.startswith("error") for r in reasons),
        "p50_ms": _percentile(latencies, 50),
        "p90_ms": _percentile(latencies, 90),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": latencies[-1],
        "slowest": sorted(per_case, key=lambda p: -p["elapsed_ms"])[:slowest],
        "disagreements": [p for p in per_case if not p["agree"]],
        "cases": per_case,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a latency that was observed)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def format_report(report: Mapping[str, Any], name: str, show_cases: bool = False) -> str:
    """The summary as a terminal table."""
    lines = [
        f"verifier {name}: {report['n']} cases",
        f"  agreement        {report['agreement']:.1%}",
        f"  false positives  {report['false_positives']}   (scored correct, labelled wrong)",
        f"  false negatives  {report['false_negatives']}   (scored wrong, labelled correct)",
        f"  timeouts         {report['timeouts']}",
        f"  errors           {report['errors']}",
        f"  latency ms       p50 {report['p50_ms']:.1f}  p90 {report['p90_ms']:.1f}  "
        f"p99 {report['p99_ms']:.1f}  max {report['max_ms']:.1f}",
    ]
    rows = report["cases"] if show_cases else report["disagreements"]
    if rows:
        lines.append("  all cases:" if show_cases else "  disagreements:")
        lines += [_case_line(p) for p in rows]
    lines.append("  slowest:")
    lines += [_case_line(p) for p in report["slowest"]]
    return "\n".join(lines)


def _case_line(p: Mapping[str, Any]) -> str:
    extracted = p["extracted"] if p["extracted"] is None else str(p["extracted"])[:40]
    return (f"    id={p['id']:<10} expected={p['expected']!s:<5} scored={p['correct']!s:<5} "
            f"reason={p['reason']!s:<16} {p['elapsed_ms']:8.1f} ms  extracted={extracted!r}")
