"""Agreement with labels: rlvr's ``math`` verifier against plain ``math-verify`` on the same labelled set.

The baseline is what a script without rlvr does: ``math_verify.parse`` on the whole completion and
``verify`` against the gold wrapped in ``\\boxed{}``, with truncated completions scored wrong (so the
comparison is on answers, not on the truncation rule). Both run in this process, each call bounded by a
3 s alarm; per category, the cases each gets wrong are counted.

    python bench/verify_agreement.py [--data tests/data/math_labelled.jsonl]
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Timeout(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Timeout


def run(name: str, rows: list[dict[str, Any]], judge: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    signal.signal(signal.SIGALRM, _alarm)
    fp = fn = errors = 0
    wrong_by_category: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    for row in rows:
        signal.alarm(3)
        try:
            said = judge(row)
        except Exception:  # a parse error or the alarm: scored wrong, counted
            said, errors = False, errors + 1
        finally:
            signal.alarm(0)
        if said != row["expected"]:
            fp, fn = fp + said, fn + (not said)
            wrong_by_category[row.get("category", "-")] += 1
    n = len(rows)
    return {"name": name, "n": n, "agreement": (n - fp - fn) / n, "false_positives": fp, "false_negatives": fn,
            "errors": errors, "seconds": time.perf_counter() - start, "wrong_by_category": dict(wrong_by_category)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "math_labelled.jsonl")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]

    from math_verify import parse, verify
    from rlvr_verifiers.math import MathVerifier

    from rlvr.verify import VerifySample

    def plain(row: dict[str, Any]) -> bool:
        if row.get("finish_reason") == "length":
            return False
        return bool(verify(parse("\\boxed{" + row["ground_truth"] + "}"), parse(row["completion"])))

    verifier = MathVerifier()

    def rlvr(row: dict[str, Any]) -> bool:
        reason = row.get("finish_reason", "stop")
        return verifier.score(VerifySample("", row["completion"], row["ground_truth"], finish_reason=reason)).correct

    print(f"{args.data.name}: {len(rows)} labelled cases")
    for report in (run("math-verify, gold in \\boxed{}", rows, plain), run("rlvr math", rows, rlvr)):
        print(f"  {report['name']:<32} agreement {report['agreement']:6.1%}"
              f"  false positives {report['false_positives']:3d}  false negatives {report['false_negatives']:3d}"
              f"  errors {report['errors']:2d}  ({report['seconds']:.1f} s)")
        worst = sorted(report["wrong_by_category"].items(), key=lambda kv: -kv[1])[:6]
        if worst:
            print("    most disagreements: " + ", ".join(f"{c} {k}" for c, k in worst))


if __name__ == "__main__":
    main()
