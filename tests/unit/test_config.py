"""Recipe schema, overrides, path resolution and error messages."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rlvr.config import RecipeError, dump_recipe, load_recipe, parse_overrides
from tests.conftest import DEFAULT_RECIPE, ROOT


def _write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def base(tmp_path: Path, tiny_model: Path, tiny_data: Path) -> dict:
    return {
        "model": {"path": str(tiny_model), "dtype": "float32"},
        "data": {"train": [{"path": str(tiny_data / "train.jsonl")}], "max_prompt_tokens": 16},
        "rollout": {"prompts_per_step": 8, "n": 4, "max_new_tokens": 8},
    }


def test_every_shipped_recipe_validates() -> None:
    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    assert len(recipes) >= 2
    for path in recipes:
        cfg = load_recipe(path)
        assert cfg.run.steps >= 1


def test_shipped_recipes_have_a_header_with_launch_line() -> None:
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        head = path.read_text().split("\n\n")[0]
        assert head.startswith("#") and "Launch" in head and "Hardware" in head, path


def test_relative_paths_resolve_against_the_recipe_file(tmp_path: Path) -> None:
    cfg = load_recipe(DEFAULT_RECIPE)
    assert Path(cfg.model.path).is_absolute()
    assert Path(cfg.model.path, "config.json").is_file()
    assert Path(cfg.data.train[0].path).is_file()


def test_dotted_overrides_parse_as_yaml() -> None:
    tree = parse_overrides(["algorithm.lr=1e-6", "rollout.n=16", "run.name=x", "data.train=[{path: a.jsonl}]",
                            "algorithm.std_normalize=false"])
    assert tree == {
        "algorithm": {"lr": 1e-6, "std_normalize": False},
        "rollout": {"n": 16},
        "run": {"name": "x"},
        "data": {"train": [{"path": "a.jsonl"}]},
    }


def test_exponent_floats_without_a_dot(tmp_path: Path, base: dict) -> None:
    assert parse_overrides(["a.b=1e-6", "a.c=3E+2", "a.d=1.5e-3", "a.e=1e6x"]) == {
        "a": {"b": 1e-6, "c": 300.0, "d": 1.5e-3, "e": "1e6x"}
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(base) + "algorithm:\n  lr: 2e-5\n")
    assert load_recipe(path).algorithm.lr == 2e-5


def test_overrides_apply_and_are_validated() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["algorithm.lr=1e-6", "rollout.n=4", "run.steps=3"])
    assert cfg.algorithm.lr == 1e-6 and cfg.rollout.n == 4 and cfg.run.steps == 3
    # untouched siblings keep their recipe values
    assert cfg.algorithm.kl_coef == load_recipe(DEFAULT_RECIPE).algorithm.kl_coef


@pytest.mark.parametrize("bad", ["algorithm.lr", "=3", "a..b=1"])
def test_malformed_override_is_rejected(bad: str) -> None:
    with pytest.raises(RecipeError, match="dotted.key=value"):
        parse_overrides([bad])


def test_unknown_key_names_field_and_lists_valid_ones(tmp_path: Path, base: dict) -> None:
    base["algorithm"] = {"learning_rate": 1e-6}
    with pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, base))
    msg = str(err.value)
    assert "algorithm.learning_rate: unknown key" in msg
    assert "lr" in msg and "clip_high" in msg  # the valid keys are listed


def test_unknown_top_level_section(tmp_path: Path, base: dict) -> None:
    base["trainer"] = {"x": 1}
    with pytest.raises(RecipeError, match=r"trainer: unknown key; valid keys here: algorithm, checkpoint"):
        load_recipe(_write(tmp_path, base))


def test_wrong_type_names_field(tmp_path: Path, base: dict) -> None:
    with pytest.raises(RecipeError, match=r"rollout\.n: .*integer.*\(got 'many'\)"):
        load_recipe(_write(tmp_path, base), ["rollout.n=many"])


def test_impossible_batch_arithmetic(tmp_path: Path, base: dict) -> None:
    with pytest.raises(RecipeError, match=r"prompts_per_step=8 is not divisible by algorithm.mini_batches=3"):
        load_recipe(_write(tmp_path, base), ["algorithm.mini_batches=3"])
    with pytest.raises(RecipeError, match=r"rollout.n must be >= 2"):
        load_recipe(_write(tmp_path, base), ["rollout.n=1"])
    with pytest.raises(RecipeError, match=r"cannot be split evenly"):
        load_recipe(_write(tmp_path, base), ["rollout.prompts_per_step=3", "rollout.n=3", "learner.num_ranks=2"])
    with pytest.raises(RecipeError, match=r"micro_batch_tokens=10 cannot hold"):
        load_recipe(_write(tmp_path, base), ["learner.micro_batch_tokens=10"])


def test_missing_dataset_file(tmp_path: Path, base: dict) -> None:
    base["data"]["train"] = [{"path": "nowhere/train.jsonl"}]
    with pytest.raises(RecipeError, match=r"data\.train\.0: .*dataset file .*nowhere/train.jsonl.* does not exist"):
        load_recipe(_write(tmp_path, base))


def test_missing_model_and_unknown_names(tmp_path: Path, base: dict) -> None:
    with pytest.raises(RecipeError, match=r"model: .*no Hugging Face model"):
        load_recipe(_write(tmp_path, base), ["model.path=/nonexistent"])
    with pytest.raises(RecipeError, match=r"algorithm: .*unknown algorithm 'grpp'; valid: .*grpo"):
        load_recipe(_write(tmp_path, base), ["algorithm.name=grpp"])
    with pytest.raises(RecipeError, match=r"data: .*unknown template 'r1'; valid: raw, zero"):
        load_recipe(_write(tmp_path, base), ["data.template=r1"])
    with pytest.raises(RecipeError, match=r"model: set exactly one of model.path"):
        load_recipe(_write(tmp_path, base), ["model.hub=Qwen/Qwen2.5-Math-7B"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["run.steps=7"])
    again = _write(tmp_path, yaml.safe_load(dump_recipe(cfg)))
    assert load_recipe(again) == cfg


def test_config_imports_without_engines() -> None:
    code = (
        "import sys; import rlvr.config, rlvr.cli; "
        "bad = [m for m in ('torch', 'vllm', 'deepspeed', 'ray', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_rejects_malformed_recipe_fast(tmp_path: Path, base: dict) -> None:
    base["rollout"]["temprature"] = 1.0
    path = _write(tmp_path, base)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "train", str(path)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    assert "rollout.temprature: unknown key" in proc.stderr and "temperature" in proc.stderr
    assert elapsed < 2.0, f"malformed recipe took {elapsed:.2f} s to fail"


def test_cli_validate(tmp_path: Path, base: dict) -> None:
    good = _write(tmp_path, base)
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "validate", str(good), str(DEFAULT_RECIPE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.count("ok") == 2
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "validate", str(tmp_path / "none.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_cli_overrides_may_follow_options(capsys: pytest.CaptureFixture[str]) -> None:
    from rlvr.cli import main

    assert main(["train", str(DEFAULT_RECIPE), "--ray-address", "auto", "run.steps=3", "--print-config",
                 "rollout.n=4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["run"]["steps"], printed["rollout"]["n"], printed["ray"]["address"]) == (3, 4, "auto")
    with pytest.raises(SystemExit):
        main(["train", str(DEFAULT_RECIPE), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_importance_sampling_band_is_validated(tmp_path: Path, base: dict) -> None:
    path = _write(tmp_path, base)
    cfg = load_recipe(path, ["algorithm.tis_cap=5.0", "algorithm.is_correction=icepop", "algorithm.is_low=0.5"])
    assert (cfg.algorithm.tis_cap, cfg.algorithm.is_correction, cfg.algorithm.is_low) == (5.0, "icepop", 0.5)
    assert load_recipe(path, ["algorithm.tis_cap=2.0", "algorithm.is_correction=mis"]).algorithm.is_low is None
    assert load_recipe(path).algorithm.is_correction == "token_tis"
    for kind in ("token_tis", "seq_tis"):  # the truncating corrections have no band
        with pytest.raises(RecipeError, match=f"algorithm: .*is_low bounds the band of is_correction mis or "
                                              f"icepop, not {kind}"):
            load_recipe(path, ["algorithm.tis_cap=2.0", f"algorithm.is_correction={kind}", "algorithm.is_low=0.5"])
    for low in ("2.0", "3.0"):  # is_low >= tis_cap: an empty band
        with pytest.raises(RecipeError, match=f"algorithm: .*is_low={float(low)} must be below tis_cap=2.0"):
            load_recipe(path, ["algorithm.tis_cap=2.0", "algorithm.is_correction=mis", f"algorithm.is_low={low}"])
    with pytest.raises(RecipeError, match=r"algorithm\.is_low: .*greater than 0"):
        load_recipe(path, ["algorithm.tis_cap=2.0", "algorithm.is_correction=mis", "algorithm.is_low=0"])
    with pytest.raises(RecipeError, match=r"algorithm\.is_correction: .*'token_tis', 'seq_tis', 'mis' or 'icepop'"):
        load_recipe(path, ["algorithm.tis_cap=2.0", "algorithm.is_correction=seq_mis"])
