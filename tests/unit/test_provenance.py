"""``rlvr validate --provenance``: every field a GPU recipe (or its preset) sets names its source, a typo in
the provenance map is an error, and the audit says which fields lack a source."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.config import load_recipe
from rlvr.config.loader import RecipeError
from rlvr.config.provenance import audit
from tests.conftest import DEFAULT_RECIPE

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
PAPER_RECIPES = ["dapo_qwen2.5_32b", "zero_math_7b", "ppo_qwen2.5_7b", "nft_qwen2.5_math_7b",
                 "general_reasoner_qwen2.5_7b"]


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_every_field_of_a_paper_recipe_has_a_source(name: str) -> None:
    _, entries = audit(RECIPES / f"{name}.yaml")
    assert [e.path for e in entries if e.source is None] == []
    paths = {e.path for e in entries}
    assert "algorithm.lr" in paths and "rollout.n" in paths
    header = (RECIPES / f"{name}.yaml").read_text().split("\nrun:")[0]
    assert f"rlvr validate --provenance recipes/{name}.yaml" in header and "Known remaining differences" in header


def test_preset_fields_are_listed_with_their_origin() -> None:
    _, entries = audit(RECIPES / "tiny_arith_dapo.yaml")
    by_path = {e.path: e for e in entries}
    assert (by_path["algorithm.clip_high"].origin, by_path["algorithm.clip_high"].value) == ("preset dapo", 0.28)
    assert by_path["algorithm.name"].origin == "recipe"
    assert all(e.source is None for e in entries)  # the tiny recipe carries no provenance map


def test_a_section_source_covers_its_fields_and_the_most_specific_wins(tmp_path: Path) -> None:
    text = DEFAULT_RECIPE.read_text() + (
        "\nprovenance:\n  learner: \"infra\"\n  algorithm: \"paper §2\"\n  algorithm.lr: \"script line 9\"\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text.replace("../", str(DEFAULT_RECIPE.parent.parent) + "/"))
    _, entries = audit(recipe)
    by_path = {e.path: e.source for e in entries}
    assert by_path["algorithm.lr"] == "script line 9"
    assert all(src == "paper §2" for p, src in by_path.items() if p.startswith("algorithm.") and p != "algorithm.lr")
    assert all(src == "infra" for p, src in by_path.items() if p.startswith("learner."))


def test_a_provenance_key_that_names_no_field_is_refused() -> None:
    with pytest.raises(RecipeError, match="provenance names unknown fields: algorithm.lrr"):
        load_recipe(DEFAULT_RECIPE, ["provenance={algorithm.lrr: x, reward.verifiers.any.kwargs.k: y}"])


def test_cli_prints_the_audit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--provenance", str(RECIPES / "dapo_qwen2.5_32b.yaml")]) == 0
    out = capsys.readouterr().out
    assert "every field has a source" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("algorithm.warmup_unit"))
    assert "verl_steps" in line and "fsdp_workers.py" in line
