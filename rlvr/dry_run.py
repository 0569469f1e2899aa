"""``rlvr train RECIPE --dry-run``: everything a run decides before it starts a worker, in seconds, with nothing
started and nothing written.

It resolves the recipe, reads and checks every data set exactly as training does (counts, dropped rows and why,
the verifier of every row), shows one training prompt as the model will see it (templated, with its token
count), the batch arithmetic of a step and the placement plan of every worker. A recipe that passes it fails
later only on what needs the workers themselves (the model's weights, a GPU, the cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlvr.config import RecipeConfig


def dry_run(cfg: RecipeConfig, resume: str | None = None, out: Callable[[str], None] = print) -> None:
    """Print the plan of a run of ``cfg``. Raises what training would raise for bad data or a bad layout."""
    from rlvr.algorithms import get_algorithm
    from rlvr.algorithms.base import wants_greedy
    from rlvr.data.dataset import read_recipe_data
    from rlvr.placement import plan_layout

    run = Path(cfg.run.output_dir) / cfg.run.name
    if resume is None:
        where = f"{run}" + (" (exists: the run would get a timestamped sibling)" if run.exists() else "")
    else:
        where = f"resume {resume} ({run} for auto)"
    out(f"run directory: {where}")
    lora = cfg.model.lora
    out(f"model: {cfg.model.source} ({cfg.model.dtype})" + (
        f", LoRA r={lora.r} alpha={lora.alpha:g} on {lora.target_modules}, sync {lora.sync_mode}" if lora else
        ", full fine-tuning"))
    train, _ = read_recipe_data(cfg, out)
    if train:
        example = train[0]
        out(f"example prompt ({len(example.token_ids)} tokens, template {cfg.data.template}, answer "
            f"{example.answer!r}, verifier {example.verifier or cfg.reward.verifier}):")
        out("\n".join(f"  | {line}" for line in example.text.splitlines() or [""]))
    r, a = cfg.rollout, cfg.algorithm
    algorithm = get_algorithm(a, max_new_tokens=r.max_new_tokens)
    extra = r.extra_samples
    out(f"each step: {r.prompts_per_step} prompts x {r.n} samples = {r.prompts_per_step * r.n} responses of <= "
        f"{r.max_new_tokens} tokens"
        + (f" (+{extra.n} for each prompt whose pass rate is in [{extra.min_pass_rate:g}, {extra.max_pass_rate:g}])"
           if extra else "")
        + (", and one greedy response per prompt (the ReMax baseline)" if wants_greedy(algorithm) else "")
        + f", {a.epochs} epoch(s) x {a.mini_batches} mini-batch(es); {cfg.run.steps} steps")
    out(f"algorithm: {a.name} (advantage {a.advantage}, policy loss {a.policy_loss}, loss aggregation {a.loss_agg}"
        + (f", KL {a.kl_estimator} x {a.kl_coef:g} in the {a.kl_placement}" if algorithm.needs_reference else "")
        + (", a value critic" if algorithm.needs_critic else "") + f"), lr {a.lr:g}")
    layout = plan_layout(cfg, algorithm.needs_critic, cfg.resources.gpus_per_node or 0)
    out(f"placement: {layout.summary}")
    out("dry run: nothing was started or written")
