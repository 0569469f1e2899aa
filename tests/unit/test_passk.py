"""pass@k against hand-computed cases (Chen et al. 2021's unbiased estimator) and the per-set summary."""

from __future__ import annotations

from math import comb

import pytest

from rlvr.evaluate import default_ks, pass_at_k, summarize


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 2 / 5),                # pass@1 is the fraction correct
    (5, 2, 2, 1 - 3 / 10),           # 1 - C(3,2)/C(5,2)
    (5, 2, 3, 1 - 1 / 10),           # 1 - C(3,3)/C(5,3)
    (5, 2, 4, 1.0),                  # fewer than k wrong ones: a correct one is always drawn
    (8, 0, 8, 0.0),
    (8, 8, 1, 1.0),
    (10, 3, 5, 1 - 21 / 252),        # C(7,5)=21, C(10,5)=252
    (16, 1, 4, 4 / 16),
])
def test_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_the_binomial_formula_everywhere() -> None:
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_rejects_impossible_arguments() -> None:
    for n, c, k in [(4, 5, 1), (4, 2, 0), (4, 2, 5), (4, -1, 1)]:
        with pytest.raises(ValueError, match="pass@k needs"):
            pass_at_k(n, c, k)


def test_summary_over_prompts() -> None:
    verdicts = [[True, False, False, False], [False, False, False, False], [True, True, True, True]]
    out = summarize(verdicts, [1, 2, 4])
    assert out["pass@1"] == pytest.approx((1 / 4 + 0 + 1) / 3)
    assert out["pass@2"] == pytest.approx(((1 - comb(3, 2) / comb(4, 2)) + 0 + 1) / 3)
    assert out["pass@4"] == pytest.approx((1 + 0 + 1) / 3)
    assert out["avg@4"] == pytest.approx(5 / 12)
    assert default_ks(8) == [1, 2, 4, 8] and default_ks(6) == [1, 2, 4, 6] and default_ks(1) == [1]


def test_model_argument_resolves_checkpoints_and_runs(tmp_path) -> None:
    from rlvr.checkpoint import CheckpointWriter
    from rlvr.eval_model import EvalError, resolve_model
    from tests.conftest import DEFAULT_RECIPE

    run = tmp_path / "run"
    writer = CheckpointWriter(run, keep=2)
    for step in (2, 4):
        tmp = writer.begin(step)
        (tmp / "hf").mkdir()
        (tmp / "hf" / "config.json").write_text("{}")
        writer.commit(tmp, step, {"step": step})
    (run / "config.yaml").write_text(DEFAULT_RECIPE.read_text().replace("../", str(DEFAULT_RECIPE.parents[1]) + "/"))
    latest = run / "checkpoints" / "step_000004"
    assert resolve_model(str(run))[0] == latest / "hf"                  # a run: its latest checkpoint
    assert resolve_model(str(run / "checkpoints" / "step_000002"))[0].parent.name == "step_000002"
    hf, recipe = resolve_model(str(latest / "hf"))                      # a checkpoint's export: still its run
    assert hf == latest / "hf" and recipe is not None and recipe.reward.verifier == "exact_int"
    with pytest.raises(EvalError, match="not a Hugging Face model directory"):
        resolve_model(str(tmp_path / "nothing"))


def test_eval_sampling_settings_reach_the_engines(monkeypatch) -> None:
    """eval.do_sample with n=1 samples at eval.temperature / eval.top_p (verl's avg@k on a k-times repeated
    set); by default one sample is greedy and several are sampled; greedy with several samples is refused."""
    from rlvr import evaluate as ev
    from rlvr.config import load_recipe
    from rlvr.config.loader import RecipeError
    from rlvr.data.dataset import PromptRow
    from rlvr.rollout.batch import RolloutBatch
    from rlvr.verify import VerifyResult
    from tests.conftest import DEFAULT_RECIPE

    calls = []

    def collect(rollouts, verify, rows, n, temperature, top_p, max_tokens, seed):
        calls.append((n, temperature, top_p, seed))
        samples = [{"token_ids": [5], "logprobs": [-0.1], "finish_reason": "stop", "text": "x"}] * (len(rows) * n)
        results = [VerifyResult(1.0, True, {})] * (len(rows) * n)
        return RolloutBatch.equal_groups(list(rows), samples, results, n, {"generate": 1.0, "verify": 0.5})

    monkeypatch.setattr(ev, "collect", collect)
    rows = {"aime": [PromptRow("Q", [1], "1", None, "aime")]}
    for overrides, expected, has_passk in (
        ([], (1, 0.0, 1.0, None), False),
        (["eval.do_sample=true", "eval.temperature=1.0", "eval.top_p=0.7"], (1, 1.0, 0.7, 0), False),
        (["eval.n=4", "eval.top_p=0.95"], (4, 1.0, 0.95, 0), True),
    ):
        calls.clear()
        cfg = load_recipe(DEFAULT_RECIPE, ["run.seed=0", *overrides])
        metrics = ev.evaluate(None, None, rows, cfg)
        assert calls == [expected], overrides
        assert ("eval/aime/pass@1" in metrics) is has_passk
    with pytest.raises(RecipeError, match="decodes greedily"):
        load_recipe(DEFAULT_RECIPE, ["eval.do_sample=false", "eval.n=4"])
