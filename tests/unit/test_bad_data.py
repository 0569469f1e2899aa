"""Bad data and bad recipes end in a clear error or a counted filter, never in a traceback from deep inside:
hand-written cases for every reason a row is dropped, then property-based tests (hypothesis) that throw
malformed rows, files, recipes and overrides at the loaders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rlvr.config import RecipeError, load_recipe
from rlvr.config.schema import DataConfig, DataSource, RewardConfig
from rlvr.data.dataset import BAD_ROW_REASONS, DataError, build_rows
from rlvr.verify.specs import verifier_checker
from tests.conftest import DEFAULT_RECIPE

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


GOOD = {"prompt": "Q: 1+2=", "answer": "3"}
BAD_LINES = [
    ("not json at all {", "invalid_json"),
    (json.dumps(["a", "list"]), "invalid_json"),
    (json.dumps({"answer": "3"}), "missing_prompt"),
    (json.dumps({"prompt": "Q: 1+2="}), "missing_answer"),
    (json.dumps({"prompt": "   ", "answer": "3"}), "empty_prompt"),
    (json.dumps({"prompt": None, "answer": "3"}), "empty_prompt"),
    (json.dumps({"prompt": "Q: 1+2=", "answer": ""}), "empty_answer"),
    (json.dumps({"prompt": {"text": "Q"}, "answer": "3"}), "bad_prompt"),
    (json.dumps({"prompt": [{"role": "user", "content": "hi"}], "answer": "3"}), "bad_template"),  # raw template
    (json.dumps({"prompt": "Q: 1+2=", "answer": "3", "verifier": "no_such_verifier"}), "unknown_verifier"),
    (json.dumps({"prompt": "Q: 1+2=", "answer": "3", "verifier": 7}), "unknown_verifier"),
    (json.dumps({"prompt": "Q: " + "9" * 80 + "=", "answer": "3"}), "too_long"),
]


def _source(tmp_path: Path, lines: list[str]) -> DataSource:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return DataSource(path=str(path))


def _cfg(src: DataSource, **kw: Any) -> DataConfig:
    return DataConfig(train=[src], verifier_key="verifier", max_prompt_tokens=40, **kw)


def test_every_bad_row_is_dropped_and_counted_by_reason(tmp_path: Path, tokenizer) -> None:
    lines = [json.dumps(GOOD)] + [line for line, _ in BAD_LINES] + [json.dumps({**GOOD, "answer": 3})]
    src = _source(tmp_path, lines)
    rows, report = build_rows(src, _cfg(src), tokenizer, verifier_checker(RewardConfig()))
    assert [r.answer for r in rows] == ["3", "3"]  # an int answer is fine
    expected: dict[str, int] = {}
    for _, reason in BAD_LINES:
        expected[reason] = expected.get(reason, 0) + 1
    assert report.dropped == expected and set(expected) == set(BAD_ROW_REASONS)
    text = report.describe()
    assert text.startswith("2 prompts (dropped: ") and "not a JSON object: 2 (first: row 1)" in text
    assert "unknown verifier: 2 (first: row 10: unknown verifier 'no_such_verifier' (installed: " in text
    assert "prompt longer than data.max_prompt_tokens: 1 (first: row 12: 84 tokens)" in text


@pytest.mark.parametrize("line, reason", BAD_LINES)
def test_error_mode_names_the_row_and_the_reason(tmp_path: Path, tokenizer, line: str, reason: str) -> None:
    src = _source(tmp_path, [json.dumps(GOOD), line])
    message = rf"data source 'd', row 1.*\({BAD_ROW_REASONS[reason]}\); data.bad_rows is error"
    with pytest.raises(DataError, match=message):
        build_rows(src, _cfg(src, bad_rows="error"), tokenizer, verifier_checker(RewardConfig()))


def test_declared_and_import_path_verifiers_are_known(tmp_path: Path) -> None:
    reward = RewardConfig(verifiers={"mine": {"verifier": "math"}})
    check = verifier_checker(reward)
    assert check("mine") is None and check("math") is None
    assert check("rlvr_verifiers.math:MathVerifier") is None
    assert "does not import" in str(check("no_such_pkg.mod:Thing"))
    assert "unknown verifier 'nope'" in str(check("nope"))


def test_a_source_with_no_usable_row_says_why(tmp_path: Path, tokenizer) -> None:
    src = _source(tmp_path, [json.dumps({"prompt": "", "answer": "1"})] * 3)
    with pytest.raises(DataError, match=r"no usable rows: 0 prompts \(dropped: empty prompt: 3 \(first: row 0\)"):
        build_rows(src, _cfg(src), tokenizer)


def test_unreadable_json_array_is_a_data_error(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"prompt": "x", "answer": 1}, ')
    src = DataSource(path=str(path))
    with pytest.raises(DataError, match="not valid JSON"):
        build_rows(src, _cfg(src), tokenizer)


# ---- property-based: the data pipeline --------------------------------------------------------------

_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                     max_leaves=8)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "robot", 3]),
                                  "content": st.one_of(st.text(max_size=20), st.integers())})
_prompt = st.one_of(_json, st.lists(_message, max_size=3), st.text(max_size=60))
_record = st.one_of(
    st.fixed_dictionaries({"prompt": _prompt, "answer": _json},
                          optional={"verifier": st.one_of(st.sampled_from(["math", "nope", "a:b", ""]), _json),
                                    "extra": _json}),
    _json,
)
_plausible = st.fixed_dictionaries(  # mostly usable rows, so the filter's bookkeeping is exercised too
    {"prompt": st.text(alphabet="0123456789+= Q:", min_size=1, max_size=20),
     "answer": st.one_of(st.integers(), st.text(alphabet="0123456789", min_size=1, max_size=4))},
    optional={"verifier": st.sampled_from(["math", "exact_int", "nope"])})
_junk = st.text(max_size=40).filter(lambda t: "\n" not in t)
_line = st.one_of(_plausible, _plausible, _record).map(json.dumps) | _junk


@SETTINGS
@given(lines=st.lists(_line, min_size=1, max_size=12), strict=st.booleans(),
       template=st.sampled_from(["raw", "chat", "zero"]))
def test_any_jsonl_is_rows_or_a_clear_error(tmp_path: Path, tokenizer, lines: list[str], strict: bool,
                                             template: str) -> None:
    src = _source(tmp_path, lines)
    cfg = _cfg(src, bad_rows="error" if strict else "drop", template=template)
    try:
        rows, report = build_rows(src, cfg, tokenizer, verifier_checker(RewardConfig()))
    except DataError as err:
        assert str(err).startswith(("data source 'd'", "data file ")), err
        event("DataError")
        return
    event(f"kept {min(len(rows), 2)}+ row(s), dropped for {min(len(report.dropped), 2)}+ reason(s)")
    assert rows and report.kept == len(rows)
    counted = report.kept + sum(report.dropped.values())
    assert counted == sum(1 for line in lines if line.strip())  # every non-blank line is kept or counted
    for row in rows:
        assert row.token_ids and len(row.token_ids) <= cfg.max_prompt_tokens and row.answer.strip()


# ---- property-based: the recipe loader ---------------------------------------------------------------

_KEYS = ["run.steps", "run.seed", "rollout.n", "rollout.num_engines", "rollout.temperature", "algorithm.name",
         "algorithm.lr", "algorithm.mini_batches", "learner.num_ranks", "learner.zero_stage", "data.train",
         "data.template", "reward.verifier", "reward.verifiers", "resources.nodes", "resources.gpus_per_node",
         "rollout.tensor_parallel_size", "data.bad_rows", "eval.data", "model.path", "no.such.key", "run"]
_yaml_value = st.one_of(st.text(max_size=20), st.integers(-5, 10 ** 6).map(str), _json.map(json.dumps),
                        st.sampled_from(["[]", "{}", "null", "~", "[{path: x.jsonl}]", "1e-6", "-1", "yes"]))


@SETTINGS
@given(overrides=st.lists(st.tuples(st.sampled_from(_KEYS), _yaml_value).map(lambda kv: f"{kv[0]}={kv[1]}"),
                          max_size=4) | st.lists(st.text(max_size=20), max_size=3))
def test_any_override_is_a_recipe_or_a_recipe_error(overrides: list[str]) -> None:
    try:
        load_recipe(DEFAULT_RECIPE, overrides)
        event("valid recipe")
    except RecipeError as err:
        assert str(err).strip()
        event("RecipeError")


@SETTINGS
@given(doc=st.one_of(_json.map(lambda v: yaml.safe_dump(v)), st.text(max_size=200),
                     st.dictionaries(st.sampled_from(["run", "model", "data", "rollout", "resources", "x"]), _json,
                                     max_size=4).map(lambda v: yaml.safe_dump(v))))
def test_any_recipe_file_is_a_recipe_or_a_recipe_error(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(doc)
    try:
        load_recipe(path)
    except RecipeError as err:
        assert str(err).strip()
