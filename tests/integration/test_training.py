"""Every preset learns, at the pace a working trainer has, broken trainers are told apart, and a dead or
diverging learner stops the run.

All runs of this module share one set of engines (Ray, one vLLM engine, the verifier pool: `rlvr.engines`);
each run is the real driver loop (`rlvr.trainer.train`) with learners of its own, which push their fresh
weights into the engine before the first rollout, so every run starts from the base policy (checked: the
engine's log-probs equal the learner's at step 1, and every run's step-0 evaluation is the same).

Measured on the tiny arithmetic task (8 steps of 64 prompts x 8 samples, lr 3e-4; greedy held-out
accuracy starts at 0.394): every preset reaches 0.79-0.84 at step 2, 0.82-0.91 at step 4 and 0.90-0.96 at
step 8 (two other seeds fell in the same ranges), and the sampled reward rises by 0.17-0.28 (the twelve
second-wave presets: 0.80-0.82, 0.82-0.89, 0.91-0.94 and +0.17-0.19; on-policy, with one update per batch,
CISPO, SAPO, GMPO, DPPO and KL-Cov are REINFORCE with their advantage, so several of them trace the same
curve). The same trainer
with a 4x smaller learning rate (`slow`) reaches 0.50 / 0.63 / 0.85 and +0.06. The thresholds sit between:
0.70 / 0.78 / 0.87 and +0.12.

Each preset also has behaviour checks that a loss or driver defect breaks even where accuracy still
rises: PPO's value loss must fall (a frozen critic's rises), dynamic sampling must leave no all-equal
group in the trained batch, the off-policy runs (2 mini-batches x 2 epochs) must clip tokens and move
the ratio away from 1. `pytest --control NAME` runs these checks on the broken variant of tests/controls.py
(they must fail); `test_negative_control_is_caught` runs some controls in every suite run and asserts that
the checks reject them. Two defects still learn on this task, as rejection sampling does: the raw reward as
the advantage (no group baseline; caught here because no advantage is ever negative) and NFT without its
negative term (caught by the hand-computed contracts of tests/unit/test_preset_contract.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rlvr.config import RecipeConfig, load_recipe
from rlvr.config.loader import deep_merge, parse_overrides
from rlvr.engines import Engines
from rlvr.tracking import read_metrics
from tests.conftest import ROOT
from tests.controls import with_control

STEPS = 8
ACCURACY_AT = {2: 0.70, 4: 0.78, STEPS: 0.87}  # greedy held-out accuracy at least this by that step
REWARD_GAIN = 0.12  # mean sampled reward of the last 3 steps minus step 1's
PRESETS = ["dapo", "drgrpo", "grpo", "gspo", "lite_ppo", "nft", "ppo", "reinforce_pp", "reinforce_pp_baseline", "rloo",
           "cispo", "clip_cov", "dppo_kl", "dppo_tv", "gdpo", "gmpo", "gpg", "kl_cov", "opo", "passk", "remax", "sapo"]
# Every run is scored by exact_int inside a compose verifier, next to a length term of weight 0 (-1 for a
# response cut at the budget): the reward is exact_int's, and GDPO has two terms to normalise one by one.
REWARD = {"verifier": "compose", "verifier_kwargs": {"terms": [
    {"name": "correct", "verifier": "exact_int"},
    {"name": "length", "verifier": "length_penalty", "weight": 0.0, "kwargs": {"max_length": 6, "buffer": 1}},
]}}
OFF_POLICY = ["algorithm.mini_batches=2", "algorithm.epochs=2"]
DYNAMIC = ("dapo", "nft")


OWN_RECIPE = ("dapo", "nft", "ppo")  # presets with a shipped tiny recipe (recipes/tiny_arith_<preset>.yaml)


def recipe(preset: str, out: Path, *overrides: str) -> RecipeConfig:
    """The shipped tiny recipe of ``preset`` (dapo, nft, ppo), or the default recipe's task with only the
    preset and a learning rate (so the preset's own parts are what runs); 8 steps, evaluated every 2."""
    path = ROOT / "recipes" / f"tiny_arith_{preset if preset in OWN_RECIPE else 'grpo'}.yaml"
    cfg = load_recipe(path, [f"run.output_dir={out}", f"run.name={preset}", f"run.steps={STEPS}", "eval.interval=2",
                             "checkpoint.final=false", "logging.samples_per_step=0"])
    raw = cfg.model_dump()
    raw["reward"].update(REWARD)
    if preset not in OWN_RECIPE:
        raw["algorithm"] = {"name": preset, "lr": 3.0e-4}
    return RecipeConfig.model_validate(deep_merge(raw, parse_overrides(list(overrides))))


@dataclass
class Run:
    preset: str
    cfg: RecipeConfig
    train: list[dict[str, Any]]
    evals: dict[int, float]

    def series(self, key: str) -> list[float]:
        return [row[key] for row in self.train]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    out = tmp_path_factory.mktemp("engines")
    with Engines(recipe("ppo", out), critic=True, row_verifiers=[], log=print, log_dir=out) as shared:
        yield shared


@pytest.fixture(scope="module")
def base_accuracy() -> dict[str, float]:
    return {}  # the first run's step-0 accuracy: every later run must start from the same policy


def train_on(engines: Engines, cfg: RecipeConfig) -> Run:
    from rlvr.trainer import train

    run_dir = train(cfg, engines=engines)
    evals = {r["step"]: r["eval/heldout/accuracy"] for r in read_metrics(run_dir, "eval")}
    return Run(cfg.algorithm.name, cfg, read_metrics(run_dir, "train"), evals)


def check_learns(run: Run, preset: str) -> None:
    """A working trainer of ``preset``: accuracy and reward at pace, healthy updates, its parts acting."""
    assert [r["step"] for r in run.train] == list(range(1, STEPS + 1))
    for step, least in ACCURACY_AT.items():
        assert run.evals[step] >= least, f"{preset}: held-out accuracy {run.evals[step]:.3f} < {least} at step " \
                                         f"{step} (curve {run.evals})"
    reward = run.series("reward/mean")
    gain = sum(reward[-3:]) / 3 - reward[0]
    assert gain >= REWARD_GAIN, f"{preset}: sampled reward rose by {gain:.3f} < {REWARD_GAIN} ({reward})"
    for row in run.train:
        assert row["actor/skipped_updates"] == 0 and math.isfinite(row["actor/grad_norm"]), row
        assert row["actor/grad_norm"] > 0, f"{preset} step {row['step']}: no gradient"
        if preset != "nft":  # a baseline (group, leave-one-out, critic or batch whitening): wrong answers pushed down
            assert row["advantage/min"] < 0 < row["advantage/max"], \
                f"{preset} step {row['step']}: advantages in [{row['advantage/min']}, {row['advantage/max']}]"
    if preset == "ppo":
        vf = run.series("critic/vf_loss")
        assert sum(vf[-3:]) / 3 < 0.5 * vf[0], f"ppo: the critic's value loss did not fall: {vf}"
        assert all(r["critic/skipped_updates"] == 0 and r["critic/grad_norm"] > 0 for r in run.train)
    if preset in DYNAMIC:  # every trained group has signal, and groups without were actually dropped
        for row in run.train:
            assert "dynamic_sampling/signal_fraction" in row, f"{preset}: dynamic sampling did not run"
            if row["dynamic_sampling/topped_up"] == 0:
                assert row["rollout/solve_all"] == row["rollout/solve_none"] == 0, row
        assert min(run.series("dynamic_sampling/signal_fraction")) < 1.0
    if run.cfg.algorithm.kl_placement == "loss":
        assert max(run.series("actor/kl")) > 0  # the policy moved away from the reference, and it is measured
    if run.cfg.algorithm.kl_placement == "reward":
        assert max(run.series("actor/kl_in_reward")) > 0
    if preset == "remax":  # the greedy baseline is generated, scored and improves with the policy
        greedy = run.series("rollout/greedy_accuracy")
        prompts = run.cfg.rollout.prompts_per_step  # one greedy response of at least one token per prompt
        tokens = run.series("rollout/greedy_generated_tokens")
        assert min(tokens) >= prompts, tokens
        assert greedy[-1] > greedy[0], greedy
    if preset == "gdpo":
        assert all("reward/terms/length" in r for r in run.train)


def check_on_policy_start(run: Run, base_accuracy: dict[str, float]) -> None:
    """The shared engine sampled the run's own fresh policy: sampler and learner agree at step 1, and the
    step-0 evaluation is the same for every run."""
    for row in run.train:
        assert abs(row["rollout/logprob_abs_diff"]) < 1e-3, row["rollout/logprob_abs_diff"]
    assert run.evals[0] == base_accuracy.setdefault("acc", run.evals[0])


@pytest.mark.controlled
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_learns(preset: str, engines: Engines, base_accuracy: dict[str, float], tmp_path: Path,
                       control: str | None) -> None:
    from rlvr.algorithms.registry import preset_defaults

    cfg = recipe(preset, tmp_path)
    if preset not in OWN_RECIPE:
        for key, value in preset_defaults(preset).items():  # the preset's own parts are what runs
            assert getattr(cfg.algorithm, key) == value, (preset, key)
    run = train_on(engines, with_control(cfg, control))
    check_on_policy_start(run, base_accuracy)
    check_learns(run, preset)
    from rlvr.metrics import undocumented

    assert undocumented({k for row in run.train for k in row}) == []


def check_off_policy(run: Run) -> None:
    """Several optimizer steps per batch: the later ones see a moved policy, ratios leave 1 and tokens get
    clipped, on every step."""
    for row in run.train:
        assert row["actor/optimizer_steps"] == 4
        # mean log pi_old - log pi over the 4 passes: 0 only if no pass saw a moved policy (either sign)
        assert abs(row["actor/ppo_kl"]) > 1e-5, f"step {row['step']}: the policy never moved within the step"
        assert row["actor/pg_clipfrac"] > 0, f"step {row['step']}: nothing clipped in 4 updates on one batch"
    assert max(abs(r - 1.0) for r in run.series("actor/ratio_mean")) > 1e-3, run.series("actor/ratio_mean")


@pytest.mark.controlled
@pytest.mark.parametrize("preset, extra", [
    ("dapo", ["algorithm.tis_cap=2.0"]),  # clip-higher, dual clip, token-level TIS and dynamic sampling
    ("gspo", []),  # sequence-level ratio with GSPO's tiny clip range
    ("ppo", ["algorithm.value_loss_agg=seq-mean-token-mean"]),  # several critic updates per batch, per-sequence
])
def test_off_policy_updates_clip_and_learn(preset: str, extra: list[str], engines: Engines,
                                           base_accuracy: dict[str, float], tmp_path: Path,
                                           control: str | None) -> None:
    run = train_on(engines, with_control(recipe(preset, tmp_path, *OFF_POLICY, *extra), control))
    check_on_policy_start(run, base_accuracy)
    check_off_policy(run)
    check_learns(run, preset)
    if preset == "ppo":
        assert all(r["critic/optimizer_steps"] == 4 for r in run.train)
        assert run.cfg.algorithm.value_loss_agg == "seq-mean-token-mean"  # and its value loss fell (check_learns)
    if preset == "dapo":
        assert all("actor/tis_clipfrac" in r for r in run.train)


def test_groups_of_different_sizes_learn(engines: Engines, base_accuracy: dict[str, float], tmp_path: Path) -> None:
    """rollout.extra_samples: prompts whose first-round pass rate lies in [0.2, 0.8] get 4 more responses, so
    groups of 8 and 12 go through GRPO's statistics (grouped by prompt) and two mini-batches cut at group
    boundaries; the run learns at the pace of equal groups."""
    run = train_on(engines, recipe("grpo", tmp_path, "rollout.extra_samples.n=4", "algorithm.mini_batches=2"))
    check_on_policy_start(run, base_accuracy)
    check_learns(run, "grpo")
    extra = run.series("rollout/extra_samples")
    assert sum(extra) > 0 and all(x % 4 == 0 for x in extra), extra
    for row in run.train:
        assert row["rollout/group_size_mean"] == pytest.approx(8 + row["rollout/extra_samples"] / 64)
        assert row["rollout/group_size_max"] == (12 if row["rollout/extra_samples"] else 8)
        assert row["actor/optimizer_steps"] == 2


NEGATIVE = [  # (name, preset, control or recipe overrides): each must fail check_learns
    ("slow", "grpo", ["algorithm.lr=7.5e-5"]),  # a trainer learning 4x slower
    ("sign_flip", "grpo", "sign_flip"),
    ("frozen_critic", "ppo", "frozen_critic"),  # PPO still learns on this task: the value-loss check catches it
    ("no_dynamic_sampling", "dapo", "no_dynamic_sampling"),  # learns too: the trained-batch check catches it
]


@pytest.mark.parametrize("name, preset, change", NEGATIVE, ids=[n for n, _, _ in NEGATIVE])
def test_negative_control_is_caught(name: str, preset: str, change: str | list[str], engines: Engines,
                                    tmp_path: Path) -> None:
    if isinstance(change, list):
        cfg = recipe(preset, tmp_path, *change)
    else:
        cfg = with_control(recipe(preset, tmp_path), change)
    run = train_on(engines, cfg)
    with pytest.raises(AssertionError) as caught:
        check_learns(run, preset)
    print(f"{name}: rejected by check_learns: {str(caught.value).splitlines()[0]}")


# ---- failures on the same engines ------------------------------------------------------------------


def test_diverging_policy_stops_ppo_although_the_critic_trains(engines: Engines, tmp_path: Path) -> None:
    """Every policy update is NaN (skipped) while PPO's critic keeps training normally: the run stops after
    learner.max_skipped_steps steps (a guard summing the roles' counts never fired here)."""
    from rlvr.session import TrainingDiverged

    cfg = with_control(recipe("ppo", tmp_path, "learner.max_skipped_steps=2", "run.steps=4"), "nan_loss")
    with pytest.raises(TrainingDiverged, match=r"step 2: every actor update of the last 2 steps"):
        train_on(engines, cfg)
    (first,) = read_metrics(tmp_path / "ppo", "train")  # step 2 stopped before it was logged
    assert first["actor/skipped_updates"] == first["actor/optimizer_steps"] == 1
    assert first["critic/skipped_updates"] == 0 and first["critic/grad_norm"] > 0


@pytest.mark.parametrize("role, process, extra", [("policy learner rank 0", "ray::LearnerWorker", []),
                                                  ("critic rank 0", "ray::CriticWorker", []),
                                                  ("policy learner rank 0", "ray::LearnerWorker",
                                                   ["rollout.max_staleness=1"])],
                         ids=["learner", "critic", "learner-async"])
def test_a_killed_learner_or_critic_is_reported_within_seconds(role: str, process: str, extra: list[str],
                                                               engines: Engines, tmp_path: Path) -> None:
    """Like a dead engine (tests/integration/test_failure_report.py): the run ends within seconds with an
    error that names the role, its node and pid, and shows its log; also while the asynchronous producer
    generates the next batch (its thread is stopped with the run)."""
    import os
    import signal
    import threading
    import time

    from rlvr.remote import WorkerError
    from tests.conftest import processes_with, wait_for

    cfg = recipe("ppo", tmp_path, "run.steps=200", "eval.data=[]", *extra)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            train_on(engines, cfg)
        except BaseException as err:  # noqa: BLE001 (handed to the test thread)
            failure.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    metrics = tmp_path / "ppo" / "metrics.jsonl"
    assert wait_for(lambda: metrics.is_file() and metrics.read_text().count('"kind": "train"') >= 2, 300)
    (victim,) = processes_with(process)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=60)
    elapsed = time.monotonic() - killed_at
    assert not thread.is_alive() and elapsed < 30, elapsed
    (err,) = failure
    assert isinstance(err, WorkerError), repr(err)
    message = str(err)
    assert f"{role} (node " in message and f"pid {victim}" in message and " died." in message, message
    assert f"last lines of the log of {role}" in message, message
    assert wait_for(lambda: not any(t.name.startswith("rlvr-producer") and t.is_alive()
                                    for t in threading.enumerate()), 10)
