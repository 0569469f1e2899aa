"""The recipe's reward section: named verifiers, composition, judge server, and the pool specs built
from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlvr.config import RecipeError, load_recipe
from rlvr.verify import VerifierSpec
from rlvr.verify.specs import DEFAULT_VERIFIER, build_specs


@pytest.fixture
def base(tiny_model: Path, tiny_data: Path) -> dict:
    return {
        "model": {"path": str(tiny_model), "dtype": "float32"},
        "data": {"train": [{"path": str(tiny_data / "train.jsonl")}], "max_prompt_tokens": 16},
        "rollout": {"prompts_per_step": 8, "n": 4, "max_new_tokens": 8},
    }


def _load(tmp_path: Path, recipe: dict, overrides: list[str] | None = None):
    path = tmp_path / "sub" / "recipe.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    return load_recipe(path, overrides or [])


def test_named_verifiers_compose_and_file_paths_resolve_against_the_recipe(tmp_path: Path, base: dict) -> None:
    base["reward"] = {
        "verifier": "compose",
        "verifier_kwargs": {"terms": [
            {"name": "correct", "verifier": "math"},
            {"name": "bonus", "verifier": "plugins/bonus.py:Bonus", "weight": 0.1},
        ]},
        "verifiers": {"code": {"verifier": "code", "kwargs": {"reward": "fraction"}, "timeout_s": 30},
                      "mine": {"verifier": "mine.py:Mine"}},
        "failure_score": -1.0,
    }
    cfg = _load(tmp_path, base)
    terms = cfg.reward.verifier_kwargs["terms"]
    assert terms[1]["verifier"] == f"{tmp_path / 'sub' / 'plugins' / 'bonus.py'}:Bonus"
    assert cfg.reward.verifiers["mine"].verifier == f"{tmp_path / 'sub' / 'mine.py'}:Mine"
    specs = build_specs(cfg.reward, [None, "code", "math", None, "code"])
    assert specs == {
        DEFAULT_VERIFIER: VerifierSpec("compose", cfg.reward.verifier_kwargs),
        "code": VerifierSpec("code", {"reward": "fraction"}, 30.0),
        "math": VerifierSpec("math", {}),  # a row naming an installed verifier directly
    }
    assert cfg.reward.failure_score == -1.0


def test_default_verifier_may_name_a_configured_one(tmp_path: Path, base: dict) -> None:
    base["reward"] = {"verifier": "strict_math", "verifiers": {"strict_math": {
        "verifier": "math", "kwargs": {"multiple_boxed": "reject"}, "timeout_s": 5}}}
    specs = build_specs(_load(tmp_path, base).reward, [])
    assert specs == {DEFAULT_VERIFIER: VerifierSpec("math", {"multiple_boxed": "reject"}, 5.0)}
    base["reward"]["verifier_kwargs"] = {"x": 1}
    with pytest.raises(RecipeError, match="leave reward.verifier_kwargs empty"):
        _load(tmp_path, base)


def test_judge_server_url_is_substituted(tmp_path: Path, base: dict) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "judge_model").mkdir()
    base["reward"] = {
        "verifier": "compose",
        "verifier_kwargs": {"terms": [{"verifier": "judge", "kwargs": {"base_url": "judge_server", "model": "j"}}]},
        "judge_server": {"model": "judge_model", "num_gpus": 1, "vllm_args": {"max-model-len": 4096}},
    }
    cfg = _load(tmp_path, base)
    assert cfg.reward.judge_server.model == str(tmp_path / "sub" / "judge_model")  # local dir: made absolute
    specs = build_specs(cfg.reward, [], judge_url="http://10.0.0.2:8123/v1", judge_model="served")
    assert specs[DEFAULT_VERIFIER].kwargs["terms"][0]["kwargs"] == {"base_url": "http://10.0.0.2:8123/v1", "model": "j"}
    base["reward"]["verifier_kwargs"]["terms"][0]["kwargs"].pop("model")
    specs = build_specs(_load(tmp_path, base).reward, [], judge_url="http://h:1/v1", judge_model="served")
    assert specs[DEFAULT_VERIFIER].kwargs["terms"][0]["kwargs"] == {"base_url": "http://h:1/v1", "model": "served"}
    with pytest.raises(ValueError, match="judge_server to be running"):
        build_specs(cfg.reward, [])
    base["reward"]["judge_server"]["model"] = "TIGER-Lab/general-verifier"  # a hub id stays as it is
    assert _load(tmp_path, base).reward.judge_server.model == "TIGER-Lab/general-verifier"


def test_judge_server_must_exist_when_asked_for(tmp_path: Path, base: dict) -> None:
    base["reward"] = {"verifiers": {"j": {"verifier": "judge", "kwargs": {"base_url": "judge_server"}}}}
    with pytest.raises(RecipeError, match="reward.judge_server is not set"):
        _load(tmp_path, base)


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ({"verifiers": {"x": {"verifier": "math", "kwarg": {}}}}, "kwarg"),
        ({"verifiers": {"x": {"kwargs": {}}}}, "verifier"),
        ({"verifiers": {"x": {"verifier": "math", "timeout_s": 0}}}, "timeout_s"),
        ({"judge_server": {"model": "m", "num_gpus": -1}}, "num_gpus"),
        ({"failure_score": "low"}, "failure_score"),
        ({"worker_memory_gib": 0}, "worker_memory_gib"),
        ({"worker_memory_gib": -2.0}, "worker_memory_gib"),
    ],
)
def test_malformed_reward_sections_name_the_field(tmp_path: Path, base: dict, reward: dict, message: str) -> None:
    base["reward"] = reward
    with pytest.raises(RecipeError, match=message):
        _load(tmp_path, base)


def test_worker_memory_cap_defaults_to_the_pools_and_may_be_lifted(tmp_path: Path, base: dict) -> None:
    from rlvr.verify.pool import DEFAULT_WORKER_MEMORY_GIB

    assert _load(tmp_path, base).reward.worker_memory_gib == DEFAULT_WORKER_MEMORY_GIB == 4.0
    assert _load(tmp_path, base, ["reward.worker_memory_gib=null"]).reward.worker_memory_gib is None
    assert _load(tmp_path, base, ["reward.worker_memory_gib=12"]).reward.worker_memory_gib == 12.0
