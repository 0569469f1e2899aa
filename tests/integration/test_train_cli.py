"""The real CLI runs the default recipe for a few steps with every logger on: run directory, metrics,
samples, the same metrics read back from JSONL, TensorBoard, offline W&B and MLflow, every key in the
metrics reference, and a final checkpoint that transformers and vLLM both load and agree on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE

STEPS = 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    cmd = [
        sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), f"run.steps={STEPS}",
        f"run.output_dir={out}", "rollout.prompts_per_step=16", "eval.interval=2", "logging.samples_per_step=2",
        "logging.loggers=[tensorboard,wandb,mlflow]",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("done: "), proc.stdout[-2000:]
    assert f"step {STEPS}/{STEPS}" in proc.stdout
    return Path(last.removeprefix("done: "))


def test_run_directory_contents(run_dir: Path) -> None:
    from rlvr.config import load_recipe

    cfg = load_recipe(run_dir / "config.yaml")  # the resolved recipe is itself a valid recipe
    assert cfg.run.steps == STEPS and cfg.rollout.prompts_per_step == 16
    train = read_metrics(run_dir, "train")
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    required = {
        "reward/mean", "accuracy", "response_length/mean", "response_length/clip_ratio", "actor/kl",
        "actor/entropy", "actor/grad_norm", "actor/lr", "rollout/logprob_abs_diff", "time/generate_s",
        "time/verify_s", "time/reference_s", "time/update_s", "time/sync_s", "time/step_s", "sync/bytes",
        "throughput/generate_tokens_per_s",
    }
    for row in train:
        assert required <= row.keys(), required - row.keys()
        assert 0.0 <= row["accuracy"] <= 1.0 and row["actor/entropy"] > 0
        assert row["actor/kl"] >= 0  # k3 is non-negative
        assert row["rollout/logprob_abs_diff"] < 1e-3  # vLLM and the learner agree on-policy
    evals = read_metrics(run_dir, "eval")
    assert [r["step"] for r in evals] == [0, 2, STEPS]
    assert all(r["eval/heldout/n"] == 500 for r in evals)
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * STEPS
    for s in samples:
        assert s["prompt"].startswith("Q: ") and s["reward"] in (0.0, 1.0)
        text = s["response"].strip()
        right = text.lstrip("-").isdigit() and int(text) == int(s["ground_truth"]) and s["finish_reason"] == "stop"
        assert s["correct"] == right, s


def test_every_logger_has_the_same_metrics(run_dir: Path) -> None:
    from tests.readback import from_jsonl, from_mlflow, from_tensorboard, from_wandb

    reference = from_jsonl(run_dir)
    assert len(reference) > 40 and reference["reward/mean"].keys() == set(range(1, STEPS + 1))
    for name, series in (("tensorboard", from_tensorboard(run_dir)), ("wandb", from_wandb(run_dir)),
                         ("mlflow", from_mlflow(run_dir))):
        assert series.keys() == reference.keys(), (name, series.keys() ^ reference.keys())
        for key, points in reference.items():
            assert series[key].keys() == points.keys(), (name, key)
            for step, value in points.items():  # TensorBoard stores float32
                assert series[key][step] == pytest.approx(value, rel=1e-6, abs=1e-9), (name, key, step)


def test_plot_of_the_run_draws_its_metrics(run_dir: Path, tmp_path: Path) -> None:
    from rlvr.plot import plot_runs

    fig = plot_runs([run_dir], None, tmp_path / "run.png")
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert {"reward/mean", "accuracy", "actor/kl", "eval/heldout/accuracy"} <= panels.keys()
    for metric, ax in panels.items():
        (line,) = ax.get_lines()
        kind = "eval" if metric.startswith("eval/") else "train"
        rows = read_metrics(run_dir, kind)
        assert list(line.get_xdata()) == [r["step"] for r in rows]
        assert list(line.get_ydata()) == [r[metric] for r in rows]
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_every_logged_metric_is_documented(run_dir: Path) -> None:
    from rlvr.metrics import undocumented

    keys = {k for row in read_metrics(run_dir) for k in row}
    assert undocumented(keys) == []


def test_final_checkpoint_loads_in_transformers_and_vllm(run_dir: Path, tmp_path: Path) -> None:
    ckpt = run_dir / "checkpoints" / "final"
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file()
    script = tmp_path / "check.py"
    script.write_text(f"""
import os, torch
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"; os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
from transformers import AutoModelForCausalLM, AutoTokenizer
from vllm import LLM, SamplingParams
ckpt = {str(ckpt)!r}
tok = AutoTokenizer.from_pretrained(ckpt)
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
prompts = ["Q: 12+34=", "Q: 57+68=", "Q: 99+1=", "Q: 40+45="]
hf = []
for p in prompts:
    ids = tok(p, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.eos_token_id)
    hf.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
llm = LLM(model=ckpt, dtype="float32", max_model_len=64)
outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=6), use_tqdm=False)
vl = [o.outputs[0].text for o in outs]
assert hf == vl, (hf, vl)
print("AGREE", hf)
""")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0 and "AGREE" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]


def test_eval_cli_computes_pass_at_k_through_vllm(run_dir: Path, tmp_path: Path) -> None:
    """`rlvr eval` on the base model (4 samples per prompt) and on the trained run (greedy): pass@k equals
    the unbiased estimate recomputed from its per-sample verdicts, and each verdict is right."""
    from math import comb

    from tests.conftest import TINY

    data = tmp_path / "h32.jsonl"
    data.write_text("".join((TINY / "data" / "heldout.jsonl").read_text().splitlines(keepends=True)[:32]))
    out, samples = tmp_path / "eval.json", tmp_path / "samples.jsonl"
    cmd = [sys.executable, "-m", "rlvr.cli", "eval", str(TINY / "model"), "--data", str(data), "--n", "4",
           "--k", "1,2,4", "--max-new-tokens", "8", "--out", str(out), "--samples-out", str(samples)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())["datasets"]["h32"]
    recs = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(recs) == 32 * 4 and result["prompts"] == 32
    verdicts: dict[int, list[bool]] = {}
    for r in recs:
        assert r["correct"] == (r["response"].strip() == r["ground_truth"] and r["finish_reason"] == "stop"), r
        verdicts.setdefault(r["row"], []).append(r["correct"])
    for k in (1, 2, 4):
        by_hand = sum(1 - comb(4 - sum(v), k) / comb(4, k) for v in verdicts.values()) / 32
        assert result[f"pass@{k}"] == pytest.approx(by_hand, abs=1e-12)
    assert result["pass@1"] == pytest.approx(result["avg@4"]) and result["pass@1"] <= result["pass@4"]

    greedy = subprocess.run([sys.executable, "-m", "rlvr.cli", "eval", str(run_dir), "--data", str(data),
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert greedy.returncode == 0, greedy.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["model"].startswith(str(run_dir / "checkpoints" / "step_")) and res["settings"]["temperature"] == 0.0
    assert set(res["datasets"]["h32"]) >= {"pass@1", "avg@1", "reward/mean", "response_length/mean"}


def test_final_export_holds_the_trained_weights(run_dir: Path) -> None:
    """checkpoints/final scores fixed sequences exactly as the learner's own state at the last step does (its
    DeepSpeed checkpoint), and differently from the base model it started from."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import TINY

    final = run_dir / "checkpoints" / "final"
    tok = AutoTokenizer.from_pretrained(final)
    texts = ["Q: 57+68=125", "Q: 38+45=83", "Q: 12+34=46", "Q: 99+1=100"]

    def logprobs(model: torch.nn.Module) -> torch.Tensor:
        out = []
        for text in texts:
            ids = tok(text, return_tensors="pt").input_ids
            with torch.no_grad():
                logits = model(ids).logits[0, :-1].float()
            out.append(torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(-1))
        return torch.cat(out)

    exported = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(TINY / "model", dtype=torch.float32)
    learner = AutoModelForCausalLM.from_pretrained(TINY / "model", dtype=torch.float32)
    saved = run_dir / "checkpoints" / f"step_{STEPS:06d}" / "learner" / "state" / "mp_rank_00_model_states.pt"
    state = torch.load(saved, map_location="cpu", weights_only=False)["module"]
    missing, unexpected = learner.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)  # tied to the embedding
    assert (logprobs(exported) - logprobs(learner)).abs().max() < 1e-6
    assert (logprobs(exported) - logprobs(base)).abs().max() > 1e-2
