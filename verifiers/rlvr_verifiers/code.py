"""Code generation (TACO, APPS, CodeContests, MBPP, HumanEval style): run the response's program against tests.

The program runs in :mod:`rlvr.verify.sandbox` (fresh namespaces, no network, read-only filesystem, its own uid,
rlimits, a wall-clock deadline), never in the verifier's process. Two test formats, both a JSON string:

* stdin/stdout: ``{"inputs": [...], "outputs": [...]}`` or ``[{"input": ..., "output": ...}, ...]``. Each case
  is a separate run; the expected output never enters the sandbox, so there is nothing the program can forge.
* assertions: ``{"asserts": ["assert f(1) == 2", ...], "setup": "import math"}``. One run executes ``setup``,
  then the solution (as module ``__solution__``, so its ``if __name__ == "__main__":`` demo code does not run),
  then each assert under try/except. A harness reads all of it from stdin, so no test sits in a file the solution
  could read, and reports each outcome on a pipe (fd 3), one line per assert, tagged with a random per-run
  nonce. Missing lines count as failures, so exiting early (``sys.exit``, ``os._exit``), printing fake results,
  writing untagged lines to the pipe, crashing or hanging cannot pass a test. Comparisons and truth tests in
  asserts refuse values whose ``__eq__``/``__bool__``/... the solution defined (the "AlwaysEqual" hack).

Threat model, honestly: asserts run in the same interpreter as the solution, so a program that deliberately
introspects that interpreter (``gc``, stack frames, ``/proc/self/fd``) can find the nonce and the pipe and forge
a pass. That is a targeted attack rather than an accident of reward hacking, and it is visible in the logged
``extracted`` code; where the data allows, prefer stdin/stdout tests, which have no such gap.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import secrets
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr.verify.sandbox import (
    SandboxLimits,
    SandboxResult,
    SandboxUnavailableError,
    run_python,
    sandbox_available,
)

__all__ = ["CodeVerifier", "extract_code"]

_FENCE = re.compile(r"^[ \t]*```[ \t]*([^\s`]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_SYNTAX_ERRORS = re.compile(r"^(SyntaxError|IndentationError|TabError)\b")
_LOG_CHARS = 2000  # of extracted code in details
_SUMMARY_CHARS = 500  # of the first failure in details
_GUARD = "__rlvr_guard__"
_STATUS_REASON = {"error": "runtime_error", "killed": "runtime_error", "memory": "memory", "timeout": "timeout",
                  "output_limit": "output_limit", "ok": "runtime_error"}
_OUTCOME_REASON = {"fail": "failed_tests", "error": "runtime_error", "memory": "memory"}


class CodeVerifier:
    """Reward a program by the tests it passes: 1.0 if all pass, else 0.0 (``reward="all"``), or the fraction
    passed (``reward="fraction"``).

    The program is the LAST fenced block tagged python/py (else the last untagged fenced block; blocks tagged
    with another language are not Python); with ``allow_unfenced=True`` a response without one is taken whole.
    A response cut off by the token limit (``finish_reason == "length"``) is never correct and is not run.
    stdout is compared line by line with whitespace normalised (runs of spaces collapse, leading/trailing
    whitespace and blank lines at either end are ignored); a non-zero exit fails the case.

    Args:
        reward: "all" or "fraction".
        limits: :class:`rlvr.verify.sandbox.SandboxLimits` fields (``cpu_time_s``, ``wall_time_s``,
            ``memory_bytes``, ``file_size_bytes``, ``disk_bytes``, ``max_processes``, ``max_output_bytes``),
            per run, i.e. per stdin/stdout case or per whole assert suite.
        max_tests: run only the first N tests (None: all). stdin/stdout cases run one after another, ~50 ms each
            plus the program's time: keep the pool's ``timeout_s`` above ``max_tests`` x ``wall_time_s``.
        allow_network: give the program the host's network (no network namespace). Off by default, and then a
            machine that cannot create a network namespace refuses to run anything.
        fail_fast: stop at the first failing test (default: True for "all", whose score is then known).
        allow_unfenced: take the whole response as the program when it has no usable fenced block.
        python: interpreter for the program (default: the one running the verifier, with its packages).
        guard_comparisons: in assert tests, fail comparisons and truth tests of values whose ``__eq__``,
            ``__bool__``, ... the solution defined. Turn off for tasks whose point is to implement them.

    details: ``extracted`` (the program, truncated for logging, or None), ``passed``, ``total``, ``reason``
    ("ok", "failed_tests", "runtime_error", "timeout", "memory", "output_limit", "syntax_error",
    "setup_error", "no_code", "truncated") and ``failure`` (the first failure, truncated; absent when all pass).
    Tests not run because of ``fail_fast`` or an early end count as failed. A ground truth that is not one of
    the formats above raises ValueError: that is a data bug, not a wrong answer.
    """

    name = "code"

    def __init__(
        self,
        reward: str = "all",
        limits: Mapping[str, Any] | None = None,
        max_tests: int | None = None,
        allow_network: bool = False,
        fail_fast: bool | None = None,
        allow_unfenced: bool = False,
        python: str | None = None,
        guard_comparisons: bool = True,
    ) -> None:
        if reward not in ("all", "fraction"):
            raise ValueError(f"CodeVerifier reward must be 'all' or 'fraction', got {reward!r}")
        if max_tests is not None and (not isinstance(max_tests, int) or max_tests < 1):
            raise ValueError(f"CodeVerifier max_tests must be a positive integer or None, got {max_tests!r}")
        limits = dict(limits or {})
        if "allow_network" in limits:
            raise ValueError("pass allow_network to CodeVerifier directly, not inside limits")
        try:
            self.limits = SandboxLimits(**limits, allow_network=bool(allow_network))
        except TypeError as exc:
            raise ValueError(f"CodeVerifier limits: {exc}") from None
        self.reward = reward
        self.max_tests = max_tests
        self.fail_fast = reward == "all" if fail_fast is None else bool(fail_fast)
        self.allow_unfenced = allow_unfenced
        self.python = python
        self.guard_comparisons = bool(guard_comparisons)
        available, why = sandbox_available(python, bool(allow_network))
        if not available:
            raise SandboxUnavailableError(f"CodeVerifier cannot run programs here: {why}")

    def score(self, sample: VerifySample) -> VerifyResult:
        tests = _parse_tests(sample.ground_truth)
        total = len(tests.cases) if self.max_tests is None else min(len(tests.cases), self.max_tests)
        code = extract_code(sample.response, self.allow_unfenced)
        details: dict[str, Any] = {"extracted": _clip(code, _LOG_CHARS), "passed": 0, "total": total}
        if sample.finish_reason == "length":
            return self._result(details, reason="truncated")
        if code is None:
            return self._result(details, reason="no_code")
        if self.python is None:  # same interpreter as the sandbox's: a syntax error needs no sandbox
            try:
                compile(code, "<solution>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
                return self._result(details, reason="syntax_error", failure=f"{type(exc).__name__}: {exc}")
        if isinstance(tests, _StdioTests):
            passed, reason, failure = self._run_stdio(code, tests.cases[:total])
        else:
            passed, reason, failure = self._run_asserts(code, tests, total)
        details["passed"] = passed
        return self._result(details, reason=reason, failure=failure)

    def _result(self, details: dict[str, Any], reason: str, failure: str | None = None) -> VerifyResult:
        details["reason"] = reason
        if failure is not None:
            details["failure"] = _clip(failure, _SUMMARY_CHARS)
        passed, total = details["passed"], details["total"]
        correct = reason == "ok" and passed == total
        score = float(correct) if self.reward == "all" else (passed / total if reason != "truncated" else 0.0)
        return VerifyResult(score, correct, details)

    def _run_stdio(self, code: str, cases: tuple[tuple[str, str], ...]) -> tuple[int, str, str | None]:
        passed, reason, failure = 0, "ok", None
        for index, (stdin, expected) in enumerate(cases):
            run = run_python(code, stdin=stdin, limits=self.limits, python=self.python)
            if run.status == "ok" and _normalise(run.stdout) == _normalise(expected):
                passed += 1
                continue
            if reason == "ok":
                if run.status == "ok":
                    reason = "failed_tests"
                    failure = f"test {index}: expected {_clip(expected, 200)!r}, got {_clip(run.stdout, 200)!r}"
                else:
                    reason = _run_reason(run)
                    failure = f"test {index}: {run.status}: {_tail(run.stderr)}"
            if self.fail_fast:
                break
        return passed, reason, failure

    def _run_asserts(self, code: str, tests: _AssertTests, total: int) -> tuple[int, str, str | None]:
        nonce = secrets.token_hex(16)
        spec = {"nonce": nonce, "setup": tests.setup, "solution": code, "tests": list(tests.cases[:total]),
                "fail_fast": self.fail_fast, "guard": self.guard_comparisons}
        run = run_python(_HARNESS, stdin=json.dumps(spec), limits=self.limits, python=self.python, channel=True)
        records: dict[tuple[str, int], tuple[str, str]] = {}
        for line in run.channel.splitlines():
            try:
                tag, kind, index, outcome, message = json.loads(line)
            except (ValueError, TypeError):
                continue
            if tag == nonce and isinstance(kind, str) and isinstance(index, int) and isinstance(message, str):
                records.setdefault((kind, index), (str(outcome), message))
        for kind, reason in (("syntax", "syntax_error"), ("setup", "setup_error"), ("load", "runtime_error")):
            if (kind, -1) in records:  # the tests never ran
                outcome, message = records[(kind, -1)]
                return 0, "memory" if outcome == "memory" else reason, f"{kind}: {message}"
        passed = sum(records.get(("test", i), ("",))[0] == "pass" for i in range(total))
        if passed == total:
            return passed, "ok", None
        first = next(i for i in range(total) if records.get(("test", i), ("",))[0] != "pass")
        if ("test", first) in records:
            outcome, message = records[("test", first)]
            return passed, _OUTCOME_REASON.get(outcome, "runtime_error"), f"{tests.sources[first]}: {message}"
        ended = f"not reached: the run ended first ({run.status})"  # os._exit, a crash, a timeout, ...
        return passed, _run_reason(run), f"{tests.sources[first]}: {ended}: {_tail(run.stderr)}"


def extract_code(response: str, allow_unfenced: bool = False) -> str | None:
    """The program in ``response`` (see :class:`CodeVerifier`), or None."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(response)]
    for wanted in (_PYTHON_TAGS, frozenset({""})):
        chosen = [body for tag, body in blocks if tag in wanted]
        if chosen:
            code = textwrap.dedent(chosen[-1])
            return code if code.strip() else None
    return response if allow_unfenced and response.strip() else None


# -- ground truth -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StdioTests:
    cases: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _AssertTests:
    setup: str
    cases: tuple[str, ...]  # guarded source, what runs
    sources: tuple[str, ...]  # as given, for failure messages


@functools.lru_cache(maxsize=4096)  # each prompt is sampled n times
def _parse_tests(ground_truth: str) -> _StdioTests | _AssertTests:
    try:
        data = json.loads(ground_truth)
    except ValueError as exc:
        raise ValueError(f"code ground truth is not JSON ({exc}): {ground_truth[:200]!r}") from None
    if isinstance(data, dict) and "asserts" in data:
        asserts, setup = data["asserts"], data.get("setup", "")
        if not isinstance(asserts, list) or not all(isinstance(a, str) for a in asserts):
            raise ValueError("code ground truth: 'asserts' must be a list of strings")
        if not isinstance(setup, str):
            raise ValueError("code ground truth: 'setup' must be a string")
        tests: _StdioTests | _AssertTests = _AssertTests(
            _guarded(setup, "setup"), tuple(_guarded(a, f"asserts[{i}]") for i, a in enumerate(asserts)),
            tuple(asserts))
    elif isinstance(data, dict) and ("inputs" in data or "outputs" in data):
        if "fn_name" in data:
            raise ValueError("code ground truth: call-based tests (fn_name) are not supported; convert to asserts")
        inputs, outputs = data.get("inputs"), data.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise ValueError("code ground truth: 'inputs' and 'outputs' must be lists of the same length")
        tests = _StdioTests(tuple((_io_text(i, f"inputs[{n}]"), _io_text(o, f"outputs[{n}]"))
                                  for n, (i, o) in enumerate(zip(inputs, outputs))))
    elif isinstance(data, list):
        if not all(isinstance(c, dict) and "input" in c and "output" in c for c in data):
            raise ValueError("code ground truth: a list must hold {'input': ..., 'output': ...} objects")
        tests = _StdioTests(tuple((_io_text(c["input"], f"[{n}].input"), _io_text(c["output"], f"[{n}].output"))
                                  for n, c in enumerate(data)))
    else:
        raise ValueError("code ground truth must hold 'asserts', 'inputs'/'outputs', or a list of input/output pairs")
    if not tests.cases:
        raise ValueError("code ground truth has no test cases")
    return tests


def _io_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)  # APPS/TACO sometimes store a case as its lines
    raise ValueError(f"code ground truth: {where} must be a string or a list of strings, got {type(value).__name__}")


def _guarded(source: str, where: str) -> str:
    """``source`` with every comparison operand and truth-tested value in its asserts passed through the guard."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"code ground truth: {where} is not valid Python: {exc}") from None
    return ast.unparse(ast.fix_missing_locations(_GuardAsserts().visit(tree)))


class _GuardAsserts(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = _truth(_GuardCompares().visit(node.test))
        return node


class _GuardCompares(ast.NodeTransformer):
    def visit_Compare(self, node: ast.Compare) -> ast.Compare:
        self.generic_visit(node)
        node.left = _guard_call(node.left)
        node.comparators = [_guard_call(c) for c in node.comparators]
        return node


def _truth(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.BoolOp):
        node.values = [_truth(v) for v in node.values]
        return node
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        node.operand = _truth(node.operand)
        return node
    return node if isinstance(node, ast.Compare) else _guard_call(node)


def _guard_call(node: ast.expr) -> ast.expr:
    return ast.Call(func=ast.Name(id=_GUARD, ctx=ast.Load()), args=[node], keywords=[])


# -- helpers ------------------------------------------------------------------------------------------------------


def _normalise(text: str) -> list[str]:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    start, end = 0, len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return lines[start:end]


def _run_reason(run: SandboxResult) -> str:
    last = run.stderr.strip().rsplit("\n", 1)[-1]
    if run.status == "error" and _SYNTAX_ERRORS.match(last):
        return "syntax_error"
    return _STATUS_REASON.get(run.status, "runtime_error")


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= 300 else "..." + text[-300:]


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more chars]"


# The program the sandbox runs for assert tests. It reads its spec from stdin (then swaps stdin for /dev/null), so
# the tests never sit in a file the solution could read, and reports on fd 3, tagging each line with the nonce.
_HARNESS = r'''
import builtins, json, os, sys, types

_type, _id, _issubclass, _isfn = type, id, issubclass, types.FunctionType
_mro = type.__dict__["__mro__"].__get__
_vars = type.__dict__["__dict__"].__get__
_SLOT, _METHOD = type(object.__eq__), type(dict.__contains__)
_CHECKED = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__contains__")
_TRUSTED_DIRS = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                              sys.base_exec_prefix)})
_TRUSTED_FILES = ("<setup>", "<test>")
_ATOMS = frozenset(map(id, (int, float, complex, bool, str, bytes, type(None))))
_CONTAINERS = ((list, list.__iter__), (tuple, tuple.__iter__), (set, set.__iter__), (frozenset, frozenset.__iter__),
               (dict, lambda d: (x for kv in dict.items(d) for x in kv)))


class UntrustedComparison(AssertionError):
    pass


def _trusted(klass, fn):
    if fn is None:
        return True
    if _type(fn) is _SLOT or _type(fn) is _METHOD:  # C code, trusted where its own type put it (no borrowing)
        return fn.__objclass__ is klass
    if _type(fn) is not _isfn:
        return False
    name = fn.__code__.co_filename
    return name in _TRUSTED_FILES or name.startswith(_TRUSTED_DIRS) or name.startswith("<frozen ")


def _guard(value):
    stack, seen, budget = [value], set(), 1_000_000
    while stack and budget > 0:
        budget -= 1
        item = stack.pop()
        cls = _type(item)
        if _id(cls) in _ATOMS:
            continue
        for klass in _mro(cls):
            namespace = _vars(klass)
            for name in _CHECKED:
                if name in namespace and not _trusted(klass, namespace[name]):
                    raise UntrustedComparison(f"{cls.__qualname__}.{name} is defined by the solution")
        for base, items in _CONTAINERS:
            if _issubclass(cls, base):
                if _id(item) not in seen:
                    seen.add(_id(item))
                    stack.extend(items(item))
                break
    return value


def _describe(exc):
    name = _type(exc).__name__
    try:
        message = str(exc)
    except BaseException:
        message = ""
    return f"{name}: {message}"[:1000] if message else name


def _outcome(exc):
    if isinstance(exc, AssertionError):
        return "fail"
    return "memory" if isinstance(exc, MemoryError) else "error"


def _main():
    spec = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.set_inheritable(3, False)
    nonce = spec["nonce"]

    def report(kind, index, outcome, message=""):
        os.write(3, (json.dumps([nonce, kind, index, outcome, message]) + "\n").encode())

    # A real module (dataclasses, pickle and enum look the solution up in sys.modules), not named __main__: the
    # solution's own `if __name__ == "__main__":` demo code does not run, as in the HumanEval and MBPP harnesses.
    module = types.ModuleType("__solution__")
    sys.modules["__solution__"] = module
    namespace = module.__dict__
    guard = _guard if spec["guard"] else (lambda value: value)
    namespace.update(__builtins__=builtins, __rlvr_guard__=guard)
    try:
        exec(compile(spec["setup"], "<setup>", "exec"), namespace)
    except BaseException as exc:
        return report("setup", -1, _outcome(exc), _describe(exc))
    try:
        solution = compile(spec["solution"], "<solution>", "exec")
    except BaseException as exc:
        return report("syntax", -1, "error", _describe(exc))
    try:
        exec(solution, namespace)
    except BaseException as exc:
        return report("load", -1, _outcome(exc), _describe(exc))
    for index, test in enumerate(spec["tests"]):
        namespace["__rlvr_guard__"] = guard
        try:
            exec(compile(test, "<test>", "exec"), namespace)
        except BaseException as exc:
            report("test", index, _outcome(exc), _describe(exc))
            if spec["fail_fast"]:
                break
        else:
            report("test", index, "pass")
    report("done", -1, "pass")


try:
    _main()
finally:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(0)  # no atexit hooks or lingering threads of the solution's
'''
