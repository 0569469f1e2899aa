"""A third-party verifier package installed with pip is found through its entry point, by the registry,
the worker pool and ``rlvr verify`` — with no change to rlvr and no import path in the recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "thirdparty_verifier"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the fixture package into its own directory (no index, no network)."""
    target = tmp_path_factory.mktemp("thirdparty_site")
    build = tmp_path_factory.mktemp("thirdparty_src")
    subprocess.run(  # build from a copy: setuptools writes build/ and *.egg-info next to the sources
        ["cp", "-r", f"{FIXTURE}/.", str(build)], check=True, timeout=30,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(build)],
        check=True, timeout=300, capture_output=True,
    )
    assert list(target.glob("rlvr_demo_plugin-*.dist-info/entry_points.txt"))
    return target


def _run(site: Path, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_installed_plugin_is_discovered_and_runs_in_pool_workers(site: Path) -> None:
    out = _run(site, """
import json
from rlvr.verify import VerifierPool, VerifySample, available_verifiers, load_verifier

if __name__ == "__main__":
    names = available_verifiers()
    direct = load_verifier("demo_palindrome", {"min_length": 5})
    with VerifierPool({"p": ("demo_palindrome", {"min_length": 5})}, num_workers=1) as pool:
        results = pool.score_batch(
            [VerifySample("Q", r, "") for r in ["Never odd or even", "abcba", "aba", "hello"]], ["p"] * 4)
    print(json.dumps({"names": names, "direct": direct.score(VerifySample("Q", "Racecar", "")).correct,
                      "pool": [r.correct for r in results]}))
""")
    got = json.loads(out)
    assert "demo_palindrome" in got["names"] and {"math", "code", "judge"} <= set(got["names"])
    assert got["direct"] is True
    assert got["pool"] == [True, True, False, False]  # "aba" is shorter than min_length


def test_installed_plugin_is_not_visible_without_its_package(site: Path) -> None:
    from rlvr.verify import available_verifiers

    assert "demo_palindrome" not in available_verifiers()  # this interpreter never saw the target dir


def test_rlvr_verify_audits_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    data = tmp_path / "labelled.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"completion": "A man a plan a canal Panama", "ground_truth": "", "expected": True},
        {"completion": "palindrome", "ground_truth": "", "expected": False},
        {"completion": "noon", "ground_truth": "", "expected": False},  # labelled wrong: a false positive
    ]) + "\n")
    out = _run(site, f"""
import sys
from rlvr.cli import main
if __name__ == "__main__":
    sys.exit(main(["verify", "--verifier", "demo_palindrome", "--data", {str(data)!r}, "--json"]))
""")
    report = json.loads(out)
    assert report["n"] == 3 and report["false_positives"] == 1 and report["false_negatives"] == 0
    assert report["agreement"] == pytest.approx(2 / 3)
