"""VerifierPool: ordered results, hard deadlines, crash/error isolation, prompt start-up failures, the worker
memory cap, process-group kills and result validation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlvr.verify import VerifierPool, VerifierPoolError, VerifierSpec, VerifySample
from tests.conftest import running, wait_for

TIMEOUT_S = 1.0

PLUGIN = """
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

from rlvr.verify import VerifyResult


class Echo:
    name = "echo"

    def score(self, sample):
        ok = sample.response == sample.ground_truth
        return VerifyResult(float(ok), ok, {"pid": os.getpid()})


class SleepsForever:
    def score(self, sample):
        while True:
            time.sleep(1)


class Exits:
    def score(self, sample):
        os._exit(3)


class Raises:
    def score(self, sample):
        raise ValueError("boom")


class WrongType:
    def score(self, sample):
        return 1.0


class Batched:
    # records how it was called: chunk size and worker pid in every result

    batch_size = 3

    def score(self, sample):
        return self.score_batch([sample])[0]

    def score_batch(self, samples):
        if any(s.response == "hang" for s in samples):
            while True:
                time.sleep(1)
        return [
            VerifyResult(float(s.response == s.ground_truth), s.response == s.ground_truth,
                         {"chunk": len(samples), "pid": os.getpid()})
            for s in samples
        ]


class BatchedShort(Batched):
    def score_batch(self, samples):
        return []


class Segfaults:
    def score(self, sample):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from a test
        os.kill(os.getpid(), signal.SIGSEGV)


class Hog:
    # bytes(n) is calloc'd: the pages are reserved, never touched, so no real memory is used either way
    def score(self, sample):
        if sample.response == "once":
            bytes(20 * 2**30)
        else:
            chunks = []
            while len(chunks) < 256:  # 64 GiB in 256 MiB pieces
                chunks.append(bytes(256 * 2**20))
        return VerifyResult(1.0, True, {})


class StartsChildThenHangs:
    # writes the child's pid to the file named by ground_truth
    def score(self, sample):
        child = subprocess.Popen(["sleep", "300"])
        Path(sample.ground_truth).write_text(str(child.pid))
        while True:
            time.sleep(1)


class StartsChild:
    def score(self, sample):
        return VerifyResult(0.0, False, {"child": subprocess.Popen(["sleep", "300"]).pid})


class Invalid:
    # returns what the response names
    def score(self, sample):
        if sample.response == "not_a_result":
            return {"score": 1.0, "correct": True}
        if sample.response == "numpy":
            import numpy

            return VerifyResult(numpy.float32(0.5), numpy.bool_(True), {})
        score, correct, details = {
            "str": ("1.0", True, {}), "none": (None, True, {}), "bool": (True, True, {}),
            "nan": (float("nan"), True, {}), "inf": (float("-inf"), True, {}), "huge": (10**400, True, {}),
            "int_correct": (1.0, 1, {}), "no_details": (1.0, True, None), "int": (1, True, {}),
        }[sample.response]
        return VerifyResult(score, correct, details)


class BatchedInvalid:
    batch_size = 2

    def score(self, sample):
        return self.score_batch([sample])[0]

    def score_batch(self, samples):
        return [VerifyResult(float("nan") if s.response == "nan" else 1.0, True, {}) for s in samples]
"""

PACKAGE_MODULE = """
from rlvr.verify import VerifyResult


class HasPrefix:
    def __init__(self, prefix):
        self.prefix = prefix

    def score(self, sample):
        ok = sample.response.startswith(self.prefix)
        return VerifyResult(float(ok), ok, {})
"""

# Imports fine in the parent, fails in a worker: start-up failures must surface in the parent.
FAILS_IN_WORKER = """
import multiprocessing

if multiprocessing.parent_process() is not None:
    raise RuntimeError("cannot start in a worker")


class Fine:
    def score(self, sample):
        raise AssertionError("never called")
"""


def _sample(response: str, ground_truth: str = "") -> VerifySample:
    return VerifySample(prompt="Q", response=response, ground_truth=ground_truth)


def _zombie_children() -> list[int]:
    """PIDs of this process's children that exited but were never reaped (Linux /proc)."""
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            zombies.append(int(stat.parent.name))
    return zombies


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("plugins")
    (root / "plugins.py").write_text(textwrap.dedent(PLUGIN))
    (root / "worker_only_failure.py").write_text(textwrap.dedent(FAILS_IN_WORKER))
    package = root / "site" / "pool_test_plugins"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "scorers.py").write_text(textwrap.dedent(PACKAGE_MODULE))
    sys.path.insert(0, str(root / "site"))  # spawned workers inherit the parent's sys.path
    yield root
    sys.path.remove(str(root / "site"))


@pytest.fixture(scope="module")
def pool(plugin_dir: Path) -> Iterator[VerifierPool]:
    verifiers = {
        "echo": ("plugins.py:Echo", {}),  # relative file path, resolved against base_dir
        "sleeps": (f"{plugin_dir}/plugins.py:SleepsForever", {}),  # absolute file path
        "exits": ("plugins.py:Exits", {}),
        "raises": ("plugins.py:Raises", {}),
        "wrong_type": ("plugins.py:WrongType", {}),
        "prefix": ("pool_test_plugins.scorers:HasPrefix", {"prefix": "ok"}),  # package.module:attr
        "exact_int": ("exact_int", {}),  # entry-point name
        "math": ("math", {}),
        "segfaults": ("plugins.py:Segfaults", {}),
        "hog": ("plugins.py:Hog", {}),
        "child_hangs": ("plugins.py:StartsChildThenHangs", {}),
        "invalid": ("plugins.py:Invalid", {}),
        "batched_invalid": ("plugins.py:BatchedInvalid", {}),
    }
    # the default worker memory cap (4 GiB): the real verifiers (math-verify, sympy) work under it
    with VerifierPool(verifiers, num_workers=2, timeout_s=TIMEOUT_S, base_dir=plugin_dir) as pool:
        yield pool


def test_results_come_back_in_input_order(pool: VerifierPool) -> None:
    samples = [_sample(str(i), str(i if i % 3 else i + 1)) for i in range(30)]
    names = ["exact_int" if i % 2 else "echo" for i in range(30)]
    results = pool.score_batch(samples, names)
    assert [r.correct for r in results] == [i % 3 != 0 for i in range(30)]
    assert [r.details["verifier"] for r in results] == names
    assert all(r.details["elapsed_ms"] >= 0 for r in results)


def test_every_spec_form_loads_in_workers(pool: VerifierPool) -> None:
    samples = [
        _sample("ok go"),
        _sample("7", "7"),
        _sample("\\boxed{\\frac{1}{2}}", "0.5"),
        _sample("x", "x"),
    ]
    results = pool.score_batch(samples, ["prefix", "exact_int", "math", "echo"])
    assert [r.correct for r in results] == [True, True, True, True]


def test_timeout_kills_worker_and_pool_recovers(pool: VerifierPool) -> None:
    """Runs from a non-main thread on purpose: that is where signal-based timeouts fail."""
    samples = [_sample("a", "a"), _sample("hang"), _sample("b", "b")]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as executor:
        results = executor.submit(pool.score_batch, samples, ["echo", "sleeps", "echo"]).result()
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S + 2.0
    assert (results[1].score, results[1].correct, results[1].details["reason"]) == (0.0, False, "timeout")
    assert TIMEOUT_S * 1000 <= results[1].details["elapsed_ms"] < (TIMEOUT_S + 1.0) * 1000
    assert results[0].correct and results[2].correct

    again = pool.score_batch([_sample(str(i), str(i)) for i in range(4)], ["echo"] * 4)
    assert all(r.correct for r in again)
    assert not _zombie_children()


def test_crash_is_scored_not_raised(pool: VerifierPool) -> None:
    results = pool.score_batch([_sample("x"), _sample("y", "y")], ["exits", "echo"])
    assert results[0].details["reason"] == "crash"
    assert results[0].details["exitcode"] == 3
    assert results[0].score == 0.0 and not results[0].correct
    assert results[1].correct
    assert pool.score_batch([_sample("z", "z")], ["echo"])[0].correct
    assert not _zombie_children()


def test_a_crash_names_its_exit_code_or_signal(pool: VerifierPool) -> None:
    exited, segfault, after = pool.score_batch([_sample("x"), _sample("x"), _sample("z", "z")],
                                               ["exits", "segfaults", "echo"])
    assert (exited.details["reason"], exited.details["message"]) == ("crash", "worker died with exit code 3")
    assert "signal" not in exited.details
    assert segfault.details["reason"] == "crash"
    assert (segfault.details["exitcode"], segfault.details["signal"]) == (-11, "SIGSEGV")
    assert segfault.details["message"] == "worker killed by SIGSEGV"
    assert segfault.score == 0.0 and not segfault.correct
    assert after.correct
    assert not _zombie_children()


def test_memory_cap_turns_a_runaway_allocation_into_a_failure(pool: VerifierPool) -> None:
    """One huge allocation and a list that grows forever: MemoryError inside the deadline, scored as a failure
    naming the cap; the worker that hit it is replaced and the pool goes on."""
    before = {w.process.pid for w in pool._workers}
    results = pool.score_batch([_sample("once"), _sample("grow"), _sample("a", "a")], ["hog", "hog", "echo"])
    reason = "error: memory: the verifier hit the 4 GiB worker memory cap (worker_memory_gib)"
    for result in results[:2]:
        assert result.details["reason"] == reason
        assert (result.score, result.correct) == (0.0, False)
        assert result.details["elapsed_ms"] < TIMEOUT_S * 1000  # not stopped by the deadline
    assert results[2].correct
    assert not before & {w.process.pid for w in pool._workers}  # both workers that hit the cap were replaced
    assert all(r.correct for r in pool.score_batch([_sample(str(i), str(i)) for i in range(4)], ["echo"] * 4))
    assert not _zombie_children()


def test_worker_memory_gib_must_be_positive() -> None:
    with pytest.raises(ValueError, match="worker_memory_gib must be > 0"):
        VerifierPool({"x": ("exact_int", {})}, worker_memory_gib=0)


def test_a_deadline_kills_what_the_verifier_started(pool: VerifierPool, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    result = pool.score_batch([_sample("x", str(pidfile))], ["child_hangs"])[0]
    child = int(pidfile.read_text())
    try:
        assert result.details["reason"] == "timeout"
        assert wait_for(lambda: not running(child), 5.0)  # killed with the worker's process group
    finally:
        if running(child):
            os.kill(child, 9)


def test_close_kills_what_the_workers_started(plugin_dir: Path) -> None:
    pool = VerifierPool({"starts": ("plugins.py:StartsChild", {})}, num_workers=1, base_dir=plugin_dir)
    child = pool.score_batch([_sample("x")], ["starts"])[0].details["child"]
    try:
        assert running(child)
        pool.close()
        assert wait_for(lambda: not running(child), 5.0)
    finally:
        pool.close()
        if running(child):
            os.kill(child, 9)


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("not_a_result", "error: TypeError: score() returned dict, expected VerifyResult"),
        ("str", "error: invalid_result: score is str '1.0', expected a real number"),
        ("none", "error: invalid_result: score is NoneType None, expected a real number"),
        ("bool", "error: invalid_result: score is bool True, expected a real number"),
        ("nan", "error: invalid_result: score is nan"),
        ("inf", "error: invalid_result: score is -inf"),
        ("huge", "error: invalid_result: score is int 1000000000000000000000000000000000000..., not representable "
                 "as a float"),
        ("int_correct", "error: invalid_result: correct is int 1, expected bool"),
        ("no_details", "error: invalid_result: details is NoneType None, expected dict"),
    ],
)
def test_invalid_results_are_errors_never_passed_on(pool: VerifierPool, response: str, reason: str) -> None:
    result, after = pool.score_batch([_sample(response), _sample("a", "a")], ["invalid", "echo"])
    assert result.details["reason"] == reason
    assert (result.score, result.correct) == (0.0, False)
    assert after.correct


def test_valid_results_are_normalised_to_plain_types(pool: VerifierPool) -> None:
    as_int, as_numpy = pool.score_batch([_sample("int"), _sample("numpy")], ["invalid", "invalid"])
    assert (type(as_int.score), as_int.score, as_int.correct) == (float, 1.0, True)
    assert (type(as_numpy.score), as_numpy.score, type(as_numpy.correct)) == (float, 0.5, bool)
    nan, fine = pool.score_batch([_sample("nan"), _sample("ok")], ["batched_invalid"] * 2)
    assert nan.details["reason"] == "error: invalid_result: score is nan"
    assert (fine.score, fine.correct) == (1.0, True)  # the chunk's other result is passed on


def test_exceptions_and_bad_return_types_are_scored(pool: VerifierPool) -> None:
    raised, wrong = pool.score_batch([_sample("x"), _sample("x")], ["raises", "wrong_type"])
    assert raised.details["reason"] == "error: ValueError: boom"
    assert wrong.details["reason"].startswith("error: TypeError: score() returned float")
    assert raised.score == wrong.score == 0.0


def test_unknown_verifier_name_lists_valid_ones(pool: VerifierPool) -> None:
    with pytest.raises(ValueError, match=r"unknown verifier\(s\) \['nope'\].*echo.*exact_int"):
        pool.score_batch([_sample("x")], ["nope"])
    with pytest.raises(ValueError, match="2 samples but 1 verifier names"):
        pool.score_batch([_sample("x"), _sample("y")], ["echo"])
    assert pool.score_batch([], []) == []


def test_failure_score_applies_to_crashes(plugin_dir: Path) -> None:
    with VerifierPool(
        {"exits": ("plugins.py:Exits", {})}, num_workers=1, base_dir=plugin_dir, failure_score=-1.0
    ) as pool:
        assert pool.score_batch([_sample("x")], ["exits"])[0].score == -1.0


def test_bad_spec_fails_in_the_parent_before_any_worker(plugin_dir: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"unknown verifier 'exact_intt'.*installed verifiers: .*exact_int"):
        VerifierPool({"x": ("exact_intt", {})})
    with pytest.raises(ImportError, match=r"missing\.py"):
        VerifierPool({"x": ("missing.py:X", {})}, base_dir=plugin_dir)
    assert time.monotonic() - start < 2.0  # raised in the parent, before any worker starts


def test_worker_start_failure_raises_promptly(plugin_dir: Path) -> None:
    start = time.monotonic()
    with pytest.raises(VerifierPoolError, match=r"(?s)failed to start.*cannot start in a worker"):
        VerifierPool({"x": ("worker_only_failure.py:Fine", {})}, num_workers=2, base_dir=plugin_dir)
    assert time.monotonic() - start < 10.0
    assert not _zombie_children()


def test_close_kills_and_reaps_workers(plugin_dir: Path) -> None:
    pool = VerifierPool({"echo": ("plugins.py:Echo", {})}, num_workers=2, base_dir=plugin_dir)
    pids = {r.details["pid"] for r in pool.score_batch([_sample(str(i)) for i in range(8)], ["echo"] * 8)}
    pool.close()
    pool.close()  # idempotent
    for pid in pids:
        with pytest.raises(ChildProcessError):  # already reaped: neither running nor a zombie
            os.waitpid(pid, os.WNOHANG)
    with pytest.raises(VerifierPoolError, match="closed"):
        pool.score_batch([_sample("x")], ["echo"])


def test_batched_verifier_gets_chunks_in_order(plugin_dir: Path) -> None:
    verifiers = {"batched": ("plugins.py:Batched", {}), "echo": ("plugins.py:Echo", {})}
    with VerifierPool(verifiers, num_workers=2, timeout_s=TIMEOUT_S, base_dir=plugin_dir) as pool:
        names = ["batched"] * 7 + ["echo"] * 2 + ["batched"]
        samples = [_sample(str(i), str(i if i != 4 else -1)) for i in range(10)]
        results = pool.score_batch(samples, names)
        assert [r.correct for r in results] == [i != 4 for i in range(10)]
        # 8 batched samples -> chunks of 3, 3, 2 (in input order); echo is scored one at a time
        chunks = [r.details["chunk"] for i, r in enumerate(results) if names[i] == "batched"]
        assert chunks == [3, 3, 3, 3, 3, 3, 2, 2]
        assert "chunk" not in results[7].details and results[7].details["verifier"] == "echo"


def test_batched_timeout_fails_its_chunk_only(plugin_dir: Path) -> None:
    verifiers = {"batched": VerifierSpec("plugins.py:Batched", timeout_s=0.5), "echo": ("plugins.py:Echo", {})}
    with VerifierPool(verifiers, num_workers=2, timeout_s=30.0, base_dir=plugin_dir) as pool:
        samples = [_sample("1", "1"), _sample("hang"), _sample("3", "3"), _sample("4", "4"), _sample("e", "e")]
        start = time.monotonic()
        results = pool.score_batch(samples, ["batched"] * 4 + ["echo"])
        assert time.monotonic() - start < 3.0  # the per-verifier deadline, not the pool's 30 s
        assert [r.details["reason"] for r in results[:3]] == ["timeout"] * 3
        assert results[0].details["timeout_s"] == 0.5
        assert results[3].correct and results[4].correct
        assert all(r.correct for r in pool.score_batch([_sample("5", "5")] * 4, ["batched"] * 4))
    assert not _zombie_children()


def test_batched_wrong_result_count_is_an_error(plugin_dir: Path) -> None:
    with VerifierPool({"short": ("plugins.py:BatchedShort", {})}, num_workers=1, base_dir=plugin_dir) as pool:
        results = pool.score_batch([_sample("a"), _sample("b")], ["short"] * 2)
        reason = "error: ValueError: score_batch() returned 0 results for 2 samples"
        assert [r.details["reason"] for r in results] == [reason] * 2


def test_submit_scores_in_the_background(pool: VerifierPool) -> None:
    first = pool.submit([_sample("1", "1"), _sample("2", "3")], ["echo", "echo"])
    second = pool.submit([_sample("7", "7")], ["exact_int"])
    assert [r.correct for r in first.result(timeout=10)] == [True, False]
    assert second.result(timeout=10)[0].correct


def test_workers_exit_when_their_owner_is_killed(plugin_dir: Path) -> None:
    """A driver SIGKILLed while a worker is stuck in a verifier leaves no worker behind."""
    script = textwrap.dedent(f"""
        import os, sys
        from rlvr.verify import VerifierPool, VerifySample
        if __name__ == "__main__":
            pool = VerifierPool({{"sleeps": ("plugins.py:SleepsForever", {{}})}}, num_workers=2, timeout_s=600,
                                base_dir={str(plugin_dir)!r})
            print(" ".join(str(w.process.pid) for w in pool._workers), flush=True)
            pool.score_batch([VerifySample("Q", "x", "")] * 2, ["sleeps"] * 2)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(1.0)  # both workers are now inside SleepsForever.score
        assert all(running(pid) for pid in pids)
        owner.kill()
        owner.wait(timeout=10)
        assert wait_for(lambda: not any(running(pid) for pid in pids), 5.0)
    finally:
        owner.kill()
        for pid in pids:  # on failure, do not leave the orphans to the rest of the suite
            if running(pid):
                os.kill(pid, 9)



def test_a_failed_health_probe_fails_the_batch_at_once(plugin_dir: Path) -> None:
    """A dependency of the verifiers dies mid-batch (a judge server): the probe's error ends the batch within
    the probe interval, not after every sample's deadline, and it is not turned into failure scores."""
    calls = []

    def health() -> None:
        calls.append(time.monotonic())
        if len(calls) > 2:
            raise RuntimeError("the judge server died")

    specs = {"sleep": VerifierSpec(f"{plugin_dir / 'plugins.py'}:SleepsForever", {}, timeout_s=60.0)}
    with VerifierPool(specs, num_workers=1, timeout_s=60.0, health=health, health_interval_s=0.2) as pool:
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="the judge server died"):
            pool.score_batch([_sample("x")], ["sleep"])
        assert time.monotonic() - start < 5.0
    assert len(calls) >= 3 and all(b - a >= 0.19 for a, b in zip(calls, calls[1:]))
