"""``rlvr eval MODEL_OR_CHECKPOINT --data FILE``: pass@k, avg@n (or greedy pass@1) per data set, through
one in-process vLLM engine and the verifier pool, as JSON.

MODEL_OR_CHECKPOINT is a Hugging Face model directory, a peft LoRA adapter directory (served on its base model
through vLLM's LoRA support), an rlvr checkpoint (``.../step_NNNNNN``: its ``hf/`` export, a model or an
adapter) or a run directory (its latest checkpoint, else ``checkpoints/final``). For a checkpoint
or a run, the run's recipe supplies the template, column names, verifier and length limits unless
flags override them. Sampling seeds are per prompt, so results do not depend on batching.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.config.schema import DataConfig, DataSource, RecipeConfig, RewardConfig


class EvalError(ValueError):
    """A model, data file or setting that cannot be evaluated; the message says which."""


@dataclass
class EvalSettings:
    data: list[str]
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    ks: list[int] | None = None
    max_new_tokens: int | None = None
    template: str | None = None
    prompt_key: str | None = None
    answer_key: str | None = None
    verifier: str | None = None
    verifier_kwargs: dict[str, Any] = field(default_factory=dict)
    max_prompt_tokens: int | None = None
    seed: int = 0
    dtype: str = "auto"
    workers: int = 2
    timeout_s: float = 10.0
    kv_cache_gib: int = 1
    samples_out: str | None = None  # every sample with its verdict, as JSON lines


def resolve_model(path: str) -> tuple[Path, RecipeConfig | None]:
    """(Hugging Face directory, the run's recipe when ``path`` is an rlvr checkpoint or run directory)."""
    from rlvr.checkpoint import complete_checkpoints
    from rlvr.config import load_recipe

    p = Path(path).resolve()
    if _is_model(p) and not (p / "COMPLETE").is_file():
        at = p.parent if p.name == "merged" and (p.parent / "adapter_config.json").is_file() else p  # LoRA merged/
        if at.parent.name == "checkpoints":  # RUN/checkpoints/final
            run = at.parent.parent
        elif (at.parent / "COMPLETE").is_file():  # RUN/checkpoints/step_N/hf
            run = at.parent.parent.parent
        else:
            run = None
        hf = p
    elif (p / "COMPLETE").is_file():
        run, hf = p.parent.parent, p / "hf"
    elif (p / "metrics.jsonl").is_file() or (p / "checkpoints").is_dir():
        found = complete_checkpoints(p)
        run, hf = p, (found[-1] / "hf" if found else p / "checkpoints" / "final")
    else:
        raise EvalError(f"{path}: not a Hugging Face model directory (no config.json), a LoRA adapter (no "
                        "adapter_config.json), an rlvr checkpoint or a run")
    if not _is_model(hf):
        raise EvalError(f"{path}: no Hugging Face model or LoRA adapter at {hf}")
    recipe = load_recipe(run / "config.yaml") if run is not None and (run / "config.yaml").is_file() else None
    return hf, recipe


def run_eval(model: str, s: EvalSettings) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from rlvr.data.dataset import build_rows
    from rlvr.evaluate import default_ks, summarize, verdicts
    from rlvr.rollout.batch import verify_sample
    from rlvr.rollout.worker import RolloutWorker
    from rlvr.verify import VerifierPool
    from rlvr.verify.specs import DEFAULT_VERIFIER, build_specs, verifier_checker

    if s.temperature == 0 and s.n > 1:
        raise EvalError("greedy decoding (temperature 0) gives n identical samples; use --n 1 or a temperature > 0")
    hf, recipe = resolve_model(model)
    data_cfg, reward = _settings_from(recipe, s)
    max_tokens = s.max_new_tokens or (recipe.eval.max_new_tokens or recipe.rollout.max_new_tokens if recipe else 512)
    ks = sorted(set(s.ks or default_ks(s.n)))
    if any(k < 1 or k > s.n for k in ks):
        raise EvalError(f"--k values must be between 1 and --n={s.n}, got {ks}")
    adapter = _adapter(hf)
    base = str(hf) if adapter is None else adapter["base_model_name_or_path"]
    # an adapter directory from elsewhere may come without a tokenizer: then its base model's
    tokenizer = AutoTokenizer.from_pretrained(hf if (hf / "tokenizer_config.json").is_file() else base)
    sets = {}
    for path in s.data:
        try:
            src = DataSource(path=str(Path(path).resolve()))
        except ValueError as err:
            raise EvalError(f"--data {path}: {err}") from None
        sets[src.label] = build_rows(src, data_cfg, tokenizer, verifier_checker(reward))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    longest = max(len(r.token_ids) for rows, _ in sets.values() for r in rows)  # not the limit: the model's
    engine = RolloutWorker(base, s.dtype, s.seed, longest + max_tokens, s.kv_cache_gib, 0.9, {},
                           lora_rank=None if adapter is None else int(adapter["r"]))
    if adapter is not None:
        engine.load_adapter(str(hf))
    names = [r.verifier for rows, _ in sets.values() for r in rows]
    settings = {"n": s.n, "temperature": s.temperature, "top_p": s.top_p, "k": ks, "max_new_tokens": max_tokens,
                "seed": s.seed}
    out: dict[str, Any] = {"model": str(hf), **({"base_model": base} if adapter else {}), "settings": settings,
                           "datasets": {}}
    with VerifierPool(build_specs(reward, names), num_workers=s.workers, timeout_s=s.timeout_s,
                      worker_memory_gib=reward.worker_memory_gib) as pool:
        for label, (rows, report) in sets.items():
            t0 = time.perf_counter()
            groups = engine.generate([r.token_ids for r in rows], s.n, s.temperature, s.top_p, max_tokens,
                                     seed=None if s.temperature == 0 else s.seed)
            flat = [(row, smp) for row, group in zip(rows, groups) for smp in group]
            results = pool.score_batch([verify_sample(row, smp) for row, smp in flat],
                                       [row.verifier or DEFAULT_VERIFIER for row, _ in flat])
            correct = verdicts(results, s.n)
            if s.samples_out:
                _append_samples(s.samples_out, label, flat, results)
            out["datasets"][label] = {
                "prompts": len(rows), "samples_per_prompt": s.n, **summarize(correct, ks),
                "reward/mean": sum(r.score for r in results) / len(results),
                "response_length/mean": sum(len(smp["token_ids"]) for _, smp in flat) / len(flat),
                "truncated": sum(smp["finish_reason"] == "length" for _, smp in flat) / len(flat),
                "dropped_rows": report.dropped, "seconds": time.perf_counter() - t0,
            }
    return out


def _is_model(p: Path) -> bool:
    return (p / "config.json").is_file() or (p / "adapter_config.json").is_file()


def _adapter(hf: Path) -> dict[str, Any] | None:
    """A LoRA adapter directory's ``adapter_config.json`` (None for a full model), its base model checked."""
    if (hf / "config.json").is_file() or not (hf / "adapter_config.json").is_file():
        return None
    cfg = json.loads((hf / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise EvalError(f"{hf}/adapter_config.json names no base_model_name_or_path: the adapter's base model "
                        "is unknown")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise EvalError(f"{hf}: a {cfg.get('peft_type')} adapter; rlvr eval serves LoRA adapters only")
    return cfg


def _settings_from(recipe: RecipeConfig | None, s: EvalSettings) -> tuple[DataConfig, RewardConfig]:
    base_data = recipe.data if recipe else None
    data = {
        "template": s.template or (base_data.template if base_data else "raw"),
        "prompt_key": s.prompt_key or (base_data.prompt_key if base_data else "prompt"),
        "answer_key": s.answer_key or (base_data.answer_key if base_data else "answer"),
        "verifier_key": base_data.verifier_key if base_data else None,
        "max_prompt_tokens": s.max_prompt_tokens or (base_data.max_prompt_tokens if base_data else 1024),
    }
    try:
        dummy = DataSource(path=str(Path(s.data[0]).resolve()))
        data_cfg = DataConfig(train=[dummy], **data)
        if s.verifier:
            reward = RewardConfig(verifier=s.verifier, verifier_kwargs=s.verifier_kwargs)
        else:
            reward = recipe.reward if recipe else RewardConfig(verifier_kwargs=s.verifier_kwargs)
    except ValueError as err:
        raise EvalError(str(err)) from None
    return data_cfg, reward


def _append_samples(path: str, label: str, flat: list[Any], results: list[Any]) -> None:
    with open(path, "a") as f:
        for (row, smp), res in zip(flat, results):
            f.write(json.dumps({"dataset": label, "row": row.metadata.get("row"), "prompt": row.text,
                                "response": smp["text"], "ground_truth": row.answer, "reward": res.score,
                                "correct": bool(res.correct), "finish_reason": smp["finish_reason"]}) + "\n")


def format_table(result: dict[str, Any]) -> str:
    lines = [f"model {result['model']}  (n={result['settings']['n']}, temperature {result['settings']['temperature']})"]
    for label, m in result["datasets"].items():
        scores = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k.startswith(("pass@", "avg@")))
        lines.append(f"  {label}: {m['prompts']} prompts  {scores}  len {m['response_length/mean']:.1f}")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
