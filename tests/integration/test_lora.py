"""LoRA end to end on the real stack (peft inside the DeepSpeed learner, vLLM serving the adapter):

1. through the CLI: a LoRA run SIGKILLed after an uncheckpointed step resumes and reproduces the straight run's
   every metric exactly; every sync of both runs is proved by the probe at 1e-4 and sends the adapter only
   (<= 5% of the full weights); the export holds the adapter (peft format) and the merged model, which
   score alike, and ``rlvr eval`` takes the adapter;
2. in process, on one learner and one engine: an adapter sync makes vLLM score exactly as the learner does,
   the reference is the base model (the adapter switched off, no second copy), the optimizer holds adapter
   state only, and an adapter that is never synced is caught by the probe and stops the sync.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from rlvr.checkpoint import complete_checkpoints
from rlvr.config import load_recipe
from rlvr.learner.batch import TrainRows
from rlvr.tracking import read_metrics
from tests.conftest import ROOT, TINY, CliRun, first_train_rows

RECIPE = ROOT / "recipes" / "tiny_arith_grpo_lora.yaml"
TOL = 1e-4  # float32 on both sides; vLLM's LoRA kernels differ from peft's only in summation order (~1e-5)
STEPS = 4
FULL_BYTES = 1_067_136 * 4  # the tiny model's full-weight sync at float32 (rlvr/assets/tiny_arith/build_info.json)


def _max_abs(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys))


def _cmd(out: Path, name: str, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rlvr.cli", "train", str(RECIPE), f"run.steps={STEPS}", f"run.output_dir={out}",
            f"run.name={name}", "eval.data=[]", "rollout.prompts_per_step=8", f"data.train=[{{path: {data}}}]",
            "checkpoint.interval=2", "checkpoint.final=false", "checkpoint.merge_lora=true",
            f"rollout.sync_probe.max_abs_diff={TOL}", *extra]


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "throughput/"))} for r in rows]


def test_lora_run_resumes_exactly_after_sigkill_and_exports_what_eval_takes(tmp_path: Path) -> None:
    data = first_train_rows(tmp_path, 16)
    straight = CliRun(_cmd(tmp_path, "straight", data))
    assert straight.finish() == 0, straight.out
    assert "LoRA adapter only (r=4" in straight.text, straight.out
    reference = _comparable(read_metrics(tmp_path / "straight", "train"))
    assert [r["step"] for r in reference] == list(range(1, STEPS + 1))
    for r in reference:  # every sync proved at 1e-4, and only the adapter travelled
        assert r["sync/logprob_max_abs_diff"] <= TOL and 0 < r["sync/bytes"] <= 0.05 * FULL_BYTES, r
    assert len({r["actor/loss"] for r in reference}) == STEPS and all(r["actor/kl"] >= 0 for r in reference)

    run_dir = tmp_path / "resumed"
    resume = _cmd(tmp_path, "resumed", data, "--resume", "auto")
    killed = CliRun(resume)  # SIGKILL after step 3: only step 2 is checkpointed
    killed.wait_line("step 3/")
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.finish()
    assert [c.name for c in complete_checkpoints(run_dir)] == ["step_000002"]
    state = run_dir / "checkpoints" / "step_000002" / "learner" / "state"
    assert sum(f.stat().st_size for f in state.iterdir()) < 0.5 * FULL_BYTES  # adapter + its optimizer, no base
    done = CliRun(resume)
    assert done.finish() == 0, done.out
    assert "step_000002 at step 2" in done.text, done.out
    resumed = _comparable(read_metrics(run_dir, "train"))
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for mine, ref in zip(resumed, reference):
        assert mine == ref, {k: (mine.get(k), ref.get(k)) for k in ref if mine.get(k) != ref.get(k)}

    hf = complete_checkpoints(run_dir)[-1] / "hf"
    config = json.loads((hf / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["base_model_name_or_path"] == str(TINY / "model")
    assert not (hf / "config.json").exists() and (hf / "merged" / "config.json").is_file()
    _adapter_and_merged_score_alike(hf)

    out = tmp_path / "eval.json"
    heldout = tmp_path / "h16.jsonl"
    heldout.write_text("".join((TINY / "data" / "heldout.jsonl").read_text().splitlines(keepends=True)[:16]))
    for model in (run_dir, hf / "merged"):  # the run (its adapter) and the merged export: the same greedy answers
        proc = subprocess.run([sys.executable, "-m", "rlvr.cli", "eval", str(model), "--data", str(heldout), "--out",
                               str(out), "--samples-out", str(tmp_path / f"{model.name}.jsonl")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads(out.read_text())["model"] == str(hf / "merged")
    answers = [[json.loads(line)["response"] for line in (tmp_path / f"{m}.jsonl").read_text().splitlines()]
               for m in (run_dir.name, "merged")]
    assert len(answers[0]) == 16 and answers[0] == answers[1]


def _adapter_and_merged_score_alike(hf: Path) -> None:
    """The peft adapter on its base and the merged model give the same log-probs, unlike the base model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf)
    ids = torch.tensor([tok("Q: 57+68=125")["input_ids"]])

    def logprobs(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)

    base = AutoModelForCausalLM.from_pretrained(TINY / "model", dtype=torch.float32)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY / "model", dtype=torch.float32), hf)
    merged = AutoModelForCausalLM.from_pretrained(hf / "merged", dtype=torch.float32)
    assert (logprobs(adapted) - logprobs(merged)).abs().max() < 1e-5
    assert (logprobs(adapted) - logprobs(base)).abs().max() > 1e-3


# ---- in process: one learner, one engine ---------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory):
    from rlvr.learner.group import LearnerGroup
    from rlvr.placement import Placement
    from rlvr.remote import init_ray
    from rlvr.rollout.group import RolloutGroup

    cfg = load_recipe(RECIPE, ["rollout.prompts_per_step=4", "rollout.n=2", "algorithm.lr=2e-2",
                               f"run.output_dir={tmp_path_factory.mktemp('runs')}"])
    init_ray(None, None, 2)
    placement = Placement.reserve(cfg, critic=False, timeout_s=60)
    learners = LearnerGroup(cfg, timeout_s=600, placement=placement)
    rollouts = RolloutGroup(cfg, max_model_len=64, timeout_s=600, placement=placement)
    rollouts.wait_ready()
    info = learners.setup()
    yield cfg, learners, rollouts, info
    ray.shutdown()


def _rows(cfg) -> TrainRows:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    ids, plens, adv = [], [], []
    for q, right, wrong in (("Q: 57+68=", "125", "15"), ("Q: 38+45=", "83", "73")):
        prompt = tok(q)["input_ids"]
        for text, a in ((right, 1.0), (wrong, -1.0)):
            ids.append(prompt + tok(text)["input_ids"] + [tok.eos_token_id])
            plens.append(len(prompt))
            adv.append([a] * (len(ids[-1]) - len(prompt)))
    return TrainRows(input_ids=ids, prompt_lens=plens, advantages=adv)


def test_adapter_sync_makes_vllm_score_as_the_learner_and_the_reference_stays_the_base(engines) -> None:
    from rlvr.weight_sync import WeightSync

    cfg, learners, rollouts, info = engines
    assert info["trainable_params"] == 4 * 11264 and info["params"] > 1_000_000  # r=4 on all 7 projections x 4 layers
    rows = _rows(cfg)
    ids, plens = rows.input_ids, rows.prompt_lens
    base = rollouts.sequence_logprobs(ids, plens)  # no adapter loaded yet: the base model
    assert _max_abs(base, learners.compute_logprobs(rows, "policy")) < TOL  # B = 0

    sync = WeightSync(learners, rollouts)
    assert sync.describe().startswith("LoRA adapter only (r=4, 56 tensors")
    for version in (1, 2):  # each sync loads a new adapter under a fresh id
        learners.train(rows, group_sizes=[2] * (len(rows) // 2))
        learner = learners.compute_logprobs(rows, "policy")
        assert _max_abs(learner, base) > 1e-2  # the update moved the policy
        stats = sync(version=version)
        assert stats["sync/bytes"] == 4 * 11264 * 4 and stats["sync/bytes"] <= 0.05 * FULL_BYTES
        assert _max_abs(rollouts.sequence_logprobs(ids, plens), learner) < TOL
        # the reference is the same module with the adapter off: still exactly the base model
        assert _max_abs(learners.compute_logprobs(rows, "reference"), base) < TOL
    # the optimizer holds adapter state only: fp32 moments (2 per parameter) + ZeRO-2's fp32 master copy
    held = learners.optimizer_state_bytes()
    assert 3 * 4 * info["trainable_params"] <= held <= 3 * 4 * info["trainable_params"] + 64  # + Adam's step count


def test_an_adapter_that_is_never_synced_is_caught_and_stops_the_sync(engines, monkeypatch) -> None:
    """The bug peers shipped (rollouts sampling the initial adapter for weeks): the sync 'succeeds' but the
    engine keeps the old adapter. The probe sees it and raises, naming the engine."""
    from rlvr.sync_probe import ProbeMismatch, SyncProbe
    from rlvr.weight_sync import WeightSync

    cfg, learners, rollouts, _ = engines
    rows = _rows(cfg)
    probe = SyncProbe.build(cfg.rollout.sync_probe, "float32", [ids[:p] for ids, p in zip(rows.input_ids,
                                                                                            rows.prompt_lens)])
    sync = WeightSync(learners, rollouts, probe=probe)
    assert sync(version=5)["sync/logprob_max_abs_diff"] < TOL
    learners.train(rows, group_sizes=[2] * (len(rows) // 2))
    monkeypatch.setattr(rollouts, "load_adapter", lambda adapter, version: [{"bytes": 0.0}])  # never reaches vLLM
    with pytest.raises(ProbeMismatch, match="rollout engine 0 .* not sampling the learner's policy"):
        sync(version=6)
