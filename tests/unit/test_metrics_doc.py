"""The metrics reference: docs/metrics.md is generated from rlvr/metrics.py and must be current; patterns
match what they should and nothing else. (The integration runs check every logged key is listed.)"""

from __future__ import annotations

from rlvr.metrics import METRICS, documented, render_markdown, undocumented
from tests.conftest import ROOT


def test_reference_document_is_current() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == render_markdown(), \
        "docs/metrics.md is stale: python -m rlvr.metrics > docs/metrics.md"


def test_patterns() -> None:
    assert documented("reward/terms/format") == "reward/terms/<name>"
    assert documented("eval/math500/accuracy") == "eval/<name>/accuracy"
    assert documented("time/critic_update_s") == "time/<name>_s"
    assert documented("eval/a/b/accuracy") is None  # <name> is one segment
    assert undocumented({"step", "kind", "reward/mean", "made/up"}) == ["made/up"]
    assert len({p for p, _, _ in METRICS}) == len(METRICS)  # no entry twice
