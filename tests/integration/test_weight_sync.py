"""The weight sync is real: after a DeepSpeed update and a sync, the vLLM engine scores a fixed
sequence exactly as the learner does, and differently from before the update.

The model here is a tied-embedding copy of the tiny default (the default itself is untied and is synced in
every training test): the harder case, where vLLM keeps its own output layer after an in-place update and
the learner must send it under its own name. Every sync also reports which engine parameters it did not
write (none here; a partial update names them).

Tolerance: both sides run the same float32 weights; vLLM's CPU kernels differ from torch's eager
ones only in summation order, measured ~1e-6 on this model, so 1e-4 is a strict bound while any
real desync (one stale tensor) moves log-probs by > 1e-2.
"""

from __future__ import annotations

import pytest
import ray

from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from rlvr.learner.group import LearnerGroup
from rlvr.placement import Placement
from rlvr.remote import init_ray
from rlvr.rollout.group import RolloutGroup
from rlvr.sync_probe import SyncProbe
from rlvr.weight_sync import WeightSync, WeightSyncError
from tests.conftest import DEFAULT_RECIPE, tied_tiny_model

TOL = 1e-4


def _max_abs(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory):
    base = load_recipe(DEFAULT_RECIPE)
    tied = tied_tiny_model(str(base.model.path), tmp_path_factory.mktemp("tied"))
    cfg = load_recipe(DEFAULT_RECIPE, [
        "algorithm.kl_placement=none", "algorithm.kl_coef=0", "algorithm.lr=5e-4",
        "rollout.prompts_per_step=4", "rollout.n=2", f"model.path={tied}",
        f"run.output_dir={tmp_path_factory.mktemp('runs')}",
    ])
    init_ray(None, None, 2)
    placement = Placement.reserve(cfg, critic=False, timeout_s=60)
    learners = LearnerGroup(cfg, timeout_s=600, placement=placement)
    rollouts = RolloutGroup(cfg, max_model_len=64, timeout_s=600, placement=placement)
    rollouts.wait_ready()
    learners.setup()
    yield cfg, learners, rollouts
    ray.shutdown()


def test_sync_makes_vllm_match_the_updated_learner(engines) -> None:
    cfg, learners, rollouts = engines
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    eos = [tok.eos_token_id]
    # two carry problems, each with the right sum (+1) and the model's typical carry-less mistake (-1)
    prompts = [tok("Q: 57+68=")["input_ids"], tok("Q: 38+45=")["input_ids"]]
    answers = [("125", "15"), ("83", "73")]
    ids, plens, adv = [], [], []
    for prompt, pair in zip(prompts, answers):
        for text, a in zip(pair, (1.0, -1.0)):
            ids.append(prompt + tok(text)["input_ids"] + eos)
            plens.append(len(prompt))
            adv.append(a)
    per_token = [[a] * (len(seq) - p) for a, seq, p in zip(adv, ids, plens)]
    rows = TrainRows(input_ids=ids, prompt_lens=plens, advantages=per_token)

    vllm_before = rollouts.sequence_logprobs(ids, plens)
    learner_before = learners.compute_logprobs(rows, "policy")
    assert _max_abs(vllm_before, learner_before) < TOL  # same initial weights

    metrics = learners.train(rows, group_sizes=[2] * (len(rows) // 2))
    assert metrics["actor/grad_norm"] > 0
    learner_after = learners.compute_logprobs(rows, "policy")
    assert _max_abs(learner_after, learner_before) > 1e-2  # the update moved the policy
    # the engine has not been told yet
    assert _max_abs(rollouts.sequence_logprobs(ids, plens), vllm_before) < TOL

    sync = WeightSync(learners, rollouts)
    assert "lm_head.weight" in sync.buckets[-1]  # the tied output layer travels under its own name
    stats = sync(version=1)
    assert stats["sync/bytes"] > 1e6  # every parameter (~1M float32) was sent
    assert sync.unwritten == []  # ...and the engine reports none it did not get

    vllm_after = rollouts.sequence_logprobs(ids, plens)
    assert _max_abs(vllm_after, learner_after) < TOL
    assert _max_abs(vllm_after, vllm_before) > 1e-2
    # the update followed the advantages: the policy-gradient objective sum_i A_i log p(o_i) rose
    # (one Adam step moves every weight, so single sequences may move either way; the objective may not)
    def objective(lps: list[list[float]]) -> float:
        return sum(a * sum(lp) for a, lp in zip(adv, lps))

    assert objective(vllm_after) > objective(vllm_before)


def test_sampler_logprobs_match_learner(engines) -> None:
    """Sampled tokens carry vLLM's log-probs; the learner reproduces them (mismatch ~0)."""
    cfg, learners, rollouts = engines
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    prompt = tok("Q: 31+19=")["input_ids"]
    groups = rollouts.generate([prompt], n=4, temperature=1.0, top_p=1.0, max_tokens=6, seed=3)
    samples = groups[0]
    assert len(samples) == 4 and all(len(s["logprobs"]) == len(s["token_ids"]) for s in samples)
    rows = TrainRows(input_ids=[prompt + s["token_ids"] for s in samples], prompt_lens=[len(prompt)] * 4)
    learner = learners.compute_logprobs(rows, "policy")
    assert _max_abs(learner, [s["logprobs"] for s in samples]) < TOL


def test_an_update_that_misses_a_layer_is_named(engines) -> None:
    """The engine names the parameters an update did not write (what sleep level 2 would turn into garbage)."""
    _, learners, rollouts = engines
    names = [n for n, _ in learners.weight_manifest()]
    rollouts.unloaded()  # start counting here
    partial = [n for n in names if not n.startswith("model.layers.1.")]
    rollouts.update_weights(learners.export_weights(partial, dtype="float32"), version=None)
    missing = rollouts.unloaded()[0]["names"]
    assert missing and all(n.startswith("model.layers.1.") for n in missing), missing
    assert "model.layers.1.self_attn.qkv_proj.weight" in missing  # vLLM's names (q/k/v stacked)
    rollouts.update_weights(learners.export_weights(names, dtype="float32"), version=None)
    assert rollouts.unloaded()[0]["names"] == []


def test_the_probe_proves_every_sync_and_stops_a_broken_one(engines) -> None:
    """rollout.sync_probe: after a sync the engine scores the probe sequences as the learner does (logged);
    a sync broken on purpose (the buckets lose layer 1 after an update) is caught, naming the engine."""
    cfg, learners, rollouts = engines
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    prompts = [tok(q)["input_ids"] for q in ("Q: 12+34=", "Q: 57+68=", "Q: 9+90=")]
    probe = SyncProbe.build(cfg.rollout.sync_probe, "float32", prompts)
    assert probe is not None and probe.threshold == 1e-3
    sync = WeightSync(learners, rollouts, probe=probe)
    assert "no sync probe" not in sync.describe() and "3 fixed sequence(s)" in sync.describe()
    stats = sync(version=10)
    assert stats["sync/logprob_max_abs_diff"] < TOL and stats["time/sync_probe_s"] > 0

    ids = [p + tok(a)["input_ids"] + [tok.eos_token_id] for p, a in zip(prompts, ("46", "125", "99"))]
    rows = TrainRows(input_ids=ids[:2], prompt_lens=[len(p) for p in prompts[:2]],
                     advantages=[[1.0] * (len(i) - len(p)) for i, p in zip(ids[:2], prompts[:2])])
    learners.train(rows, group_sizes=[2] * (len(rows) // 2))
    whole = sync.buckets
    sync.buckets = [[n for n in bucket if not n.startswith("model.layers.1.")] for bucket in whole]
    with pytest.raises(WeightSyncError, match=r"rollout engine 0 \(max \|diff\| .*\) scored the probe sequences"):
        sync(version=11)
    sync.buckets = whole  # the full sync puts the engine back on the learner's policy
    assert sync(version=12)["sync/logprob_max_abs_diff"] < TOL
