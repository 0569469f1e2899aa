"""CodeVerifier: extraction, both test formats, reward modes, failure reasons, reward hacks that must not pay,
malformed ground truth, and a run through VerifierPool's worker processes. Every program really runs in the
sandbox; nothing is skipped when the sandbox is unavailable."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from typing import Any

import pytest
from rlvr_verifiers.code import CodeVerifier, extract_code

from rlvr.verify import VerifierPool, VerifySample

FAST = {"cpu_time_s": 1, "wall_time_s": 2}
ADD_IO = {"inputs": ["1 2\n", "3 4\n", "10 20\n"], "outputs": ["3\n", "7\n", "30\n"]}
ADD_ASSERTS = {"asserts": ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(-1, 1) == 0"]}
STR_ASSERTS = {"asserts": ["assert add(1, 2) == '3'", "assert add(2, 2) == '4'", "assert add(5, 5) == '10'"]}
ADD_STDIN = "a, b = map(int, input().split())\nprint(a + b)\n"


def _fenced(code: str, tag: str = "python") -> str:
    newline = "" if code.endswith("\n") else "\n"
    return f"Here is my solution.\n```{tag}\n{code}{newline}```\nIt reads two numbers."


def _score(verifier: CodeVerifier, code: str | None, truth: Any, finish_reason: str = "stop", raw: str | None = None):
    response = raw if raw is not None else _fenced(code or "")
    return verifier.score(VerifySample("p", response, json.dumps(truth), finish_reason=finish_reason))


@pytest.fixture(scope="module")
def strict() -> CodeVerifier:
    return CodeVerifier(limits=FAST)


@pytest.fixture(scope="module")
def fraction() -> CodeVerifier:
    return CodeVerifier(reward="fraction", limits=FAST)


# -- extraction -----------------------------------------------------------------------------------------------------


def test_extract_prefers_the_last_python_block() -> None:
    response = "```python\nfirst()\n```\ntext\n```\nuntagged()\n```\n```py\nlast()\n```\n```text\nnot code\n```"
    assert extract_code(response) == "last()\n"
    assert extract_code("```\nplain()\n```\nand\n```\nlater()\n```") == "later()\n"
    assert extract_code("    ```python\n    indented()\n    ```") == "indented()\n"
    assert extract_code("```cpp\nint main() {}\n```") is None
    assert extract_code("print(1)") is None
    assert extract_code("print(1)", allow_unfenced=True) == "print(1)"
    assert extract_code("```python\n\n```") is None
    assert extract_code("```python\nunclosed()\n") is None


# -- stdin/stdout ---------------------------------------------------------------------------------------------------


def test_stdio_correct_solution_passes_both_formats(strict: CodeVerifier) -> None:
    result = _score(strict, ADD_STDIN, ADD_IO)
    assert (result.score, result.correct) == (1.0, True)
    assert result.details["reason"] == "ok" and (result.details["passed"], result.details["total"]) == (3, 3)
    assert result.details["extracted"] == ADD_STDIN and "failure" not in result.details
    pairs = [{"input": i, "output": o} for i, o in zip(ADD_IO["inputs"], ADD_IO["outputs"])]
    assert _score(strict, ADD_STDIN, pairs).correct


def test_stdio_whitespace_is_normalised(strict: CodeVerifier) -> None:
    truth = {"inputs": [["1 2", "3 4"]], "outputs": [["3", "7   8"]]}  # cases given as lists of lines
    code = "print('\\n 3   ')\nprint('7 8  ')\nprint('\\n\\n')\n"  # blank lines at either end do not count
    assert _score(strict, code, truth).correct
    assert not _score(strict, "print(3)\nprint(78)", truth).correct
    assert not _score(strict, "print(3)\nprint()\nprint('7 8')", truth).correct  # inside, they do


def test_stdio_wrong_answer_fails_with_a_summary(strict: CodeVerifier, fraction: CodeVerifier) -> None:
    code = "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n"
    result = _score(fraction, code, ADD_IO)
    assert result.score == pytest.approx(2 / 3) and not result.correct
    assert result.details["reason"] == "failed_tests" and result.details["passed"] == 2
    assert result.details["failure"] == "test 2: expected '30\\n', got '0\\n'"
    wrong_first = "a, b = map(int, input().split())\nprint(0 if a == 1 else a + b)\n"
    stopped = _score(strict, wrong_first, ADD_IO)  # "all" stops at the first failure
    assert (stopped.score, stopped.details["passed"]) == (0.0, 0)
    everything = CodeVerifier(limits=FAST, fail_fast=False)
    assert _score(everything, wrong_first, ADD_IO).details["passed"] == 2


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("raise SystemExit(1)", "runtime_error"),
        ("import sys\nprint(3)\nsys.exit(2)", "runtime_error"),
        ("x = [0] * (10 ** 10)", "memory"),
        ("while True:\n    pass", "timeout"),
        ("import time\ntime.sleep(60)", "timeout"),
        ("while True:\n    print('spam' * 1000)", "output_limit"),
        ("import os\nos.kill(os.getpid(), 11)", "runtime_error"),
        ("def f(:\n    pass", "syntax_error"),
    ],
)
def test_stdio_failures_have_reasons(strict: CodeVerifier, code: str, reason: str) -> None:
    result = _score(strict, code, ADD_IO)
    assert (result.score, result.correct, result.details["reason"]) == (0.0, False, reason)
    assert result.details["failure"]


def test_program_cannot_reach_the_network() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.3)
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=1)\nprint(3)"
        result = _score(CodeVerifier(limits=FAST), code, {"inputs": [""], "outputs": ["3"]})
        assert result.details["reason"] == "runtime_error" and "Network is unreachable" in result.details["failure"]
        with pytest.raises(TimeoutError):
            server.accept()


def test_max_tests_runs_only_the_first_tests() -> None:
    verifier = CodeVerifier(limits=FAST, max_tests=2)
    truth = {"inputs": ["1 2", "3 4", "5 5"], "outputs": ["3", "7", "wrong"]}
    result = _score(verifier, ADD_STDIN, truth)
    assert result.correct and result.details["total"] == 2


# -- asserts --------------------------------------------------------------------------------------------------------


def test_asserts_correct_wrong_and_fraction(strict: CodeVerifier, fraction: CodeVerifier) -> None:
    good = "def add(a, b):\n    return a + b\n"
    assert _score(strict, good, ADD_ASSERTS).correct
    partial = "def add(a, b):\n    return 3 if a == 1 else 0\n"
    result = _score(fraction, partial, ADD_ASSERTS)
    assert result.score == pytest.approx(2 / 3) and result.details["reason"] == "failed_tests"
    assert result.details["failure"] == "assert add(2, 2) == 4: AssertionError"
    assert _score(strict, partial, ADD_ASSERTS).score == 0.0


def test_asserts_with_setup_and_stdlib_values(strict: CodeVerifier) -> None:
    truth = {"setup": "from fractions import Fraction\ndef check(f):\n    assert f(1, 3) == Fraction(1, 3)",
             "asserts": ["check(ratio)", "assert ratio(2, 4) in [Fraction(1, 2)]", "assert not ratio(0, 1)"]}
    code = "from fractions import Fraction\ndef ratio(a, b):\n    return Fraction(a, b)\n"
    assert _score(strict, code, truth).correct


def test_asserts_failures_have_reasons(fraction: CodeVerifier) -> None:
    cases = {
        "def add(a, b):\n    raise KeyError('boom')": ("runtime_error", 0),
        "def add(a, b):\n    return a + b if a != 2 else [0] * (10 ** 10)": ("memory", 2),
        "def add(a, b):\n    while a == 2:\n        pass\n    return a + b": ("timeout", 1),
        "raise ValueError('at import')\ndef add(a, b):\n    return a + b": ("runtime_error", 0),
        "def add(a, b)\n    return a + b": ("syntax_error", 0),
    }
    for code, (reason, passed) in cases.items():
        result = _score(fraction, code, ADD_ASSERTS)
        assert (result.details["reason"], result.details["passed"]) == (reason, passed), code
    bad_setup = _score(fraction, "def add(a, b):\n    return a + b", {**ADD_ASSERTS, "setup": "import no_such_mod"})
    assert bad_setup.details["reason"] == "setup_error" and bad_setup.score == 0.0


@pytest.mark.parametrize(
    "hack",
    [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "print('PASS\\nPASS\\nPASS')\nimport os\nos._exit(0)",
        # well-formed records on the result pipe, but without the harness's nonce
        "import os\nfor i in range(4):\n    os.write(3, b'[\"0\", \"test\", %d, \"pass\", \"\"]\\n' % i)\nos._exit(0)",
        "class Anything:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Anything()",
        "class Int(int):\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Int(0)",
        "class Box:\n    __eq__ = lambda self, other: True\ndef add(a, b):\n    return [Box()][0]",
        "def add(a, b):\n    class T:\n        def __bool__(self):\n            return True\n    return T()",
        # C methods borrowed from another type: "3" in "0123456789" is True for any digit
        "class Digits(str):\n    __eq__ = str.__contains__\ndef add(a, b):\n    return Digits('-0123456789')",
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    raise SystemExit(0)",
    ],
)
def test_assert_reward_hacks_do_not_pay(fraction: CodeVerifier, hack: str) -> None:
    for truth in ({"asserts": [*ADD_ASSERTS["asserts"], "assert add(5, 5)"]}, STR_ASSERTS):
        result = _score(fraction, hack, truth)
        assert result.score == 0.0 and not result.correct, result.details


def test_containers_of_lying_values_are_caught(strict: CodeVerifier) -> None:
    code = "class Yes:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return {'k': [Yes()]}"
    result = _score(strict, code, {"asserts": ["assert add(1, 2) == {'k': [3]}"]})
    assert not result.correct and "Yes.__eq__ is defined by the solution" in result.details["failure"]


def test_solution_classes_and_modules_behave_normally() -> None:
    code = textwrap.dedent("""
        from __future__ import annotations
        import dataclasses, pickle

        @dataclasses.dataclass
        class Point:
            x: int

        def make(x):
            return pickle.loads(pickle.dumps(Point(x)))

        if __name__ == "__main__":
            input()  # demo code: not run, as in the HumanEval/MBPP harnesses
    """)
    truth = {"asserts": ["assert make(2).x == 2", "assert make(1) == Point(1)"]}
    guarded = _score(CodeVerifier(reward="fraction", limits=FAST), code, truth)
    assert guarded.details["passed"] == 1 and "Point.__eq__" in guarded.details["failure"]
    assert _score(CodeVerifier(limits=FAST, guard_comparisons=False), code, truth).correct


# -- response handling ----------------------------------------------------------------------------------------------


def test_truncated_response_is_never_correct(fraction: CodeVerifier) -> None:
    result = _score(fraction, ADD_STDIN, ADD_IO, finish_reason="length")
    assert (result.score, result.correct, result.details["reason"]) == (0.0, False, "truncated")


def test_no_code_and_unfenced_responses(strict: CodeVerifier) -> None:
    result = _score(strict, None, ADD_IO, raw="The answer is to add the numbers.")
    assert (result.score, result.details["reason"], result.details["extracted"]) == (0.0, "no_code", None)
    unfenced = CodeVerifier(limits=FAST, allow_unfenced=True)
    assert _score(unfenced, None, ADD_IO, raw=ADD_STDIN).correct


def test_extracted_code_is_truncated_for_logging(strict: CodeVerifier) -> None:
    code = ADD_STDIN + "# " + "x" * 5000 + "\n"
    extracted = _score(strict, code, ADD_IO).details["extracted"]
    assert len(extracted) < 2100 and extracted.startswith(ADD_STDIN) and extracted.endswith("more chars]")


# -- configuration and data errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("truth", "match"),
    [
        ("not json", "not JSON"),
        ({"inputs": ["1"], "outputs": []}, "same length"),
        ({"inputs": [1], "outputs": ["1"]}, r"inputs\[0\] must be a string"),
        ({"inputs": [], "outputs": []}, "no test cases"),
        ({"asserts": []}, "no test cases"),
        ({"asserts": "assert f()"}, "list of strings"),
        ({"asserts": ["assert f("]}, r"asserts\[0\] is not valid Python"),
        ({"asserts": ["assert f()"], "setup": "def ("}, "setup is not valid Python"),
        ({"fn_name": "f", "inputs": [[1]], "outputs": [[1]]}, "call-based"),
        ([{"input": "1"}], "a list must hold"),
        ({"tests": []}, "must hold"),
    ],
)
def test_malformed_ground_truth_raises(strict: CodeVerifier, truth: Any, match: str) -> None:
    raw = truth if isinstance(truth, str) else json.dumps(truth)
    with pytest.raises(ValueError, match=match):
        strict.score(VerifySample("p", _fenced("print(1)\n"), raw))


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError, match="reward"):
        CodeVerifier(reward="some")
    with pytest.raises(ValueError, match="max_tests"):
        CodeVerifier(max_tests=0)
    with pytest.raises(ValueError, match="limits"):
        CodeVerifier(limits={"cpu_seconds": 1})
    with pytest.raises(ValueError, match="allow_network"):
        CodeVerifier(limits={"allow_network": True})


# -- in the verifier pool -------------------------------------------------------------------------------------------


def test_runs_inside_verifier_pool_workers() -> None:
    specs = {"code": ("rlvr_verifiers.code:CodeVerifier", {"reward": "fraction", "limits": FAST})}
    samples = [
        VerifySample("p", _fenced(ADD_STDIN), json.dumps(ADD_IO)),
        VerifySample("p", _fenced("print(0)\n"), json.dumps(ADD_IO)),
        VerifySample("p", _fenced("while True:\n    pass\n"), json.dumps(ADD_ASSERTS)),
        VerifySample("p", _fenced("def add(a, b):\n    return a + b\n"), json.dumps(ADD_ASSERTS)),
    ]
    started = time.monotonic()
    with VerifierPool(specs, num_workers=2, timeout_s=30) as pool:
        results = pool.score_batch(samples, ["code"] * len(samples))
    assert [r.score for r in results] == [1.0, 0.0, 0.0, 1.0]
    assert [r.details["reason"] for r in results] == ["ok", "failed_tests", "timeout", "ok"]
    assert all(r.details["verifier"] == "code" for r in results)
    assert time.monotonic() - started < 30
