"""`Engines.mismatch`: which recipes may share already-started engines (nothing is started here)."""

from __future__ import annotations

from pathlib import Path

from rlvr.config import load_recipe
from rlvr.engines import Engines
from tests.conftest import DEFAULT_RECIPE


def _engines(*overrides: str, critic: bool = False) -> Engines:
    return Engines(load_recipe(DEFAULT_RECIPE, list(overrides)), critic, [None], print, Path("/nonexistent"))


def test_runs_that_differ_only_in_sampling_and_training_share_the_engines() -> None:
    shared = _engines(critic=True)
    other = load_recipe(DEFAULT_RECIPE, ["rollout.n=4", "rollout.temperature=0.7", "rollout.prompts_per_step=32",
                                         "algorithm.lr=1e-5", "run.seed=7", "run.steps=3", "eval.interval=2"])
    assert shared.mismatch(other, critic=True, row_verifiers=[None]) == []


def test_what_the_engines_were_built_from_is_named() -> None:
    shared = _engines()
    other = load_recipe(DEFAULT_RECIPE, ["rollout.num_engines=2", "reward.timeout_s=3", "rollout.max_new_tokens=32",
                                         "learner.micro_batch_tokens=8192"])
    why = shared.mismatch(other, critic=True, row_verifiers=[None, "gsm8k"])
    assert "rollout.num_engines differs" in why and "reward differs" in why
    assert "the run needs a critic and no place was reserved for one" in why
    assert "its sequences (48 tokens) are longer than the engines hold (22)" in why
    assert "its rows ask for verifiers the pool does not have: gsm8k" in why
    assert len(why) == 5, why
