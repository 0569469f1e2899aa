"""One step's rollout batch, with DAPO dynamic sampling when the algorithm asks for it.

Dynamic sampling (Yu et al., arXiv 2503.14476) drops groups whose rewards are all equal (no
group-relative signal; NFT also needs the correct rate strictly inside (0, 1)) and keeps generating
fresh prompts until ``prompts_per_step`` groups with signal are collected, at most
``max_generation_batches`` rounds of ``ceil(generation_batch_multiplier * prompts_per_step)`` prompts
each (DAPO over-generates 3x per round; groups with signal beyond the batch are discarded, as in verl).
If the rounds run out (the data is nearly all solved or all failed), ``when_rounds_run_out`` decides:
``pad`` tops the batch up with dropped groups so training can go on, the shortfall reported in the
step's metrics (``dynamic_sampling/topped_up``) and on the console; ``stop`` ends the run with
`SignalExhausted` (what verl's DAPO recipe does).

Each round is `collect_round`: ``rollout.n`` samples per prompt, one greedy response more per prompt when the
advantage needs a greedy baseline (ReMax), then, with ``rollout.extra_samples``, a second round for the
prompts whose first-round pass rate lies in the band, so their groups are larger. Dynamic sampling then
judges whole groups, extra samples included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rlvr.config.schema import ExtraSamplesConfig, RecipeConfig
from rlvr.data.dataset import PromptRow, PromptSampler
from rlvr.rollout.batch import RolloutBatch, collect
from rlvr.rollout.group import RolloutGroup
from rlvr.verify import VerifierPool


class SignalExhausted(RuntimeError):
    """Dynamic sampling ran out of rounds with the batch short, and the recipe says to stop."""


def extra_sample_groups(pass_rates: list[float], extra: ExtraSamplesConfig) -> list[int]:
    """The groups that get a second round: first-round pass rate within ``[min_pass_rate, max_pass_rate]``,
    both edges included (a rate within 1e-9 of an edge counts as on it, so a band edge written as 0.33 and a
    rate of 1/3 are not separated by rounding alone)."""
    eps = 1e-9
    return [k for k, rate in enumerate(pass_rates)
            if extra.min_pass_rate - eps <= rate <= extra.max_pass_rate + eps]


def collect_round(
    cfg: RecipeConfig, rollouts: RolloutGroup, verify: VerifierPool, prompts: list[PromptRow], seed: int | None,
    greedy: bool = False,
) -> RolloutBatch:
    """One round of a step's rollouts: ``rollout.n`` samples per prompt (and with ``greedy`` one greedy response
    each, the ReMax baseline), scored; then ``extra_samples.n`` more for each prompt whose pass rate on those first
    ``n`` lies in the band, scored and appended to its group. The second round's seeds start after the first
    round's (``seed + len(prompts) * n``), so its samples differ from the first round's; ``sample_step``
    leaves room for both. ``timings["extra_samples"]``: the second round's wall time (generation and scoring;
    also counted in ``generate`` and ``verify``)."""
    r = cfg.rollout
    batch = collect(rollouts, verify, prompts, r.n, r.temperature, r.top_p, r.max_new_tokens, seed=seed,
                    greedy=greedy)
    extra = r.extra_samples
    if extra is None:
        return batch
    start = time.perf_counter()
    chosen = extra_sample_groups(batch.pass_rates(), extra)
    if chosen:
        more = collect(rollouts, verify, [prompts[k] for k in chosen], extra.n, r.temperature, r.top_p,
                       r.max_new_tokens, seed=None if seed is None else seed + len(prompts) * r.n)
        batch = batch.with_extra(chosen, more)
    batch.timings["extra_samples"] = time.perf_counter() - start
    return batch


def sample_step(
    cfg: RecipeConfig, rollouts: RolloutGroup, verify: VerifierPool, prompts: PromptSampler, step: int,
    greedy: bool = False,
) -> tuple[RolloutBatch, dict[str, float]]:
    """Step ``step``'s batch and its dynamic-sampling metrics (empty without dynamic sampling). ``greedy``:
    one greedy response per prompt too, for a loss module that wants the baseline
    (`rlvr.algorithms.base.wants_greedy`: ReMax)."""
    r, a = cfg.rollout, cfg.algorithm
    want = r.prompts_per_step
    gen = math.ceil(a.generation_batch_multiplier * want) if a.dynamic_sampling else want
    per_round = gen * (r.n + (r.extra_samples.n if r.extra_samples else 0))  # seeds: first and second round
    kept: list[RolloutBatch] = []
    dropped: list[RolloutBatch] = []
    timings: dict[str, float] = {}
    have = rounds = generated = with_signal = tokens = greedy_tokens = 0
    while have < want and rounds < (a.max_generation_batches if a.dynamic_sampling else 1):
        # Seeds: disjoint per step and per round (each prompt gets its own range inside the worker).
        seed = cfg.run.seed * 1_000_000_007 + (step * a.max_generation_batches + rounds) * per_round
        batch = collect_round(cfg, rollouts, verify, prompts.next_batch(gen), seed, greedy)
        if not a.dynamic_sampling:
            return batch, {}
        rounds += 1
        generated += gen
        for k, v in batch.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        tokens += sum(batch.response_lengths)
        greedy_tokens += batch.greedy_generated_tokens
        signal = batch.group_has_signal()
        good = [k for k, ok in enumerate(signal) if ok]
        with_signal += len(good)
        kept.append(batch.select_groups(good[: want - have]))
        dropped.append(batch.select_groups([k for k, ok in enumerate(signal) if not ok]))
        have += min(len(good), want - have)
    topped_up = want - have
    if topped_up and a.when_rounds_run_out == "stop":
        raise SignalExhausted(
            f"step {step}: dynamic sampling found {have} of {want} groups with signal in {rounds} rounds of {gen} "
            f"prompts (algorithm.max_generation_batches={a.max_generation_batches}); the recipe says stop "
            "(algorithm.when_rounds_run_out=stop; 'pad' would fill the batch with groups without signal)"
        )
    if topped_up:
        kept.append(RolloutBatch.concat(dropped).select_groups(list(range(topped_up))))
    out = RolloutBatch.concat(kept)
    out.timings = timings
    engine_tokens = tokens + greedy_tokens  # the greedy responses share the engines' passes
    metrics = {  # generation over all rounds, not only the groups kept
        "rollout/generated_tokens": float(tokens),
        **({"rollout/greedy_generated_tokens": float(greedy_tokens)} if out.has_greedy else {}),
        "throughput/generate_tokens_per_s": engine_tokens / timings["generate"] if timings.get("generate") else 0.0,
        "dynamic_sampling/rounds": float(rounds),
        "dynamic_sampling/signal_fraction": with_signal / generated,
        "dynamic_sampling/topped_up": float(topped_up),
    }
    return out, metrics


class SyncRollouts:
    """The synchronous loop's rollouts: each step's batch generated when the step asks, by the weights of
    the step before. Same interface as `rlvr.rollout.producer.Producer` (``next_batch``, ``updating``,
    ``engine_busy_s``), so the driver loop reads the same either way. ``sync``: the run's `WeightSync`,
    whose GPU sleep hooks wrap each rollout. ``greedy``: one greedy response per prompt too (`sample_step`)."""

    def __init__(self, cfg: RecipeConfig, rollouts: RolloutGroup, verify: VerifierPool, prompts: PromptSampler,
                 sync: Any, greedy: bool = False) -> None:
        self.cfg, self.rollouts, self.verify, self.prompts, self.sync = cfg, rollouts, verify, prompts, sync
        self.greedy = greedy
        self._generate_s = 0.0

    def next_batch(self, step: int, times: dict[str, float]) -> tuple[RolloutBatch, dict[str, float]]:
        self.sync.before_rollout()  # engines awake (GPU sleep mode); no-op otherwise
        batch, sampling = sample_step(self.cfg, self.rollouts, self.verify, self.prompts, step, self.greedy)
        self.sync.after_rollout()  # the engines' GPU memory goes to the learners until the sync
        self._generate_s = batch.timings.get("generate", 0.0)
        return batch, sampling

    @contextmanager
    def updating(self, step: int, times: dict[str, float]) -> Iterator[None]:
        """Around the weight sync: the engines are idle already."""
        yield

    def engine_busy_s(self) -> float:
        return self._generate_s
