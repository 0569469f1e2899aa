"""One rollout batch: generate a group per prompt, score every sample, summarise.

This is the "rollout + verification" half of a step, usable on its own (no learner needed).
"""

from __future__ import annotations

import bisect
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from rlvr.algorithms.parts.shaping import zero_variance_groups
from rlvr.data.dataset import PromptRow
from rlvr.learner.batch import TrainRows
from rlvr.rollout.group import RolloutGroup
from rlvr.rollout.worker import Sample
from rlvr.verify import VerifierPool, VerifyResult, VerifySample
from rlvr.verify.specs import DEFAULT_VERIFIER


@dataclass
class RolloutBatch:
    """A step's prompts, their groups of samples and the verdicts, group-major: group k (prompt k's
    samples) is contiguous, and groups may differ in size (``rollout.extra_samples`` gives some prompts a
    second round). ``extra_counts[k]``: how many of group k's samples came from that second round (its last
    ones). ``greedy_samples`` / ``greedy_results``: one greedy (temperature 0) response per prompt and its
    verdict, the ReMax baseline (Li et al., arXiv 2310.10505); never trained on."""

    prompts: list[PromptRow]
    samples: list[Sample]  # group-major: prompt 0's group, then prompt 1's, ...
    results: list[VerifyResult]
    group_sizes: list[int]
    timings: dict[str, float]
    extra_counts: list[int] | None = None  # None: no second round (all zeros)
    greedy_samples: list[Sample] | None = None  # one per prompt
    greedy_results: list[VerifyResult] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.group_sizes, int):
            raise TypeError("RolloutBatch.group_sizes is a list of per-group sizes; for groups of equal size "
                            "use RolloutBatch.equal_groups(prompts, samples, results, n, timings)")
        if len(self.group_sizes) != len(self.prompts):
            raise ValueError(f"RolloutBatch: {len(self.group_sizes)} group sizes for {len(self.prompts)} prompts")
        if any(g < 1 for g in self.group_sizes):
            raise ValueError(f"RolloutBatch: every group needs a sample, got sizes {self.group_sizes}")
        if not sum(self.group_sizes) == len(self.samples) == len(self.results):
            raise ValueError(f"RolloutBatch: groups of {sum(self.group_sizes)} samples in all, but "
                             f"{len(self.samples)} samples and {len(self.results)} verdicts")
        if self.extra_counts is None:
            self.extra_counts = [0] * len(self.prompts)
        if len(self.extra_counts) != len(self.prompts) or any(
                not 0 <= e < g for e, g in zip(self.extra_counts, self.group_sizes)):
            raise ValueError(f"RolloutBatch: extra_counts {self.extra_counts} do not fit group sizes "
                             f"{self.group_sizes} (each group keeps at least one first-round sample)")
        if (self.greedy_samples is None) != (self.greedy_results is None):
            raise ValueError("RolloutBatch: greedy_samples and greedy_results come together")
        if self.greedy_samples is not None and not (
                len(self.greedy_samples) == len(self.greedy_results or []) == len(self.prompts)):
            raise ValueError(f"RolloutBatch: one greedy sample and verdict per prompt: {len(self.prompts)} prompts, "
                             f"{len(self.greedy_samples)} greedy samples, {len(self.greedy_results or [])} verdicts")

    @classmethod
    def equal_groups(
        cls, prompts: list[PromptRow], samples: list[Sample], results: list[VerifyResult], n: int,
        timings: dict[str, float], **kwargs: Any,
    ) -> RolloutBatch:
        """A batch whose groups all hold ``n`` samples (one round, the usual case)."""
        return cls(prompts, samples, results, [n] * len(prompts), timings, **kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Batches pickled before groups could differ in size (a checkpoint's carried asynchronous batches)
        had one ``group_size``."""
        if "group_size" in state:
            state = dict(state)
            state["group_sizes"] = [state.pop("group_size")] * len(state["prompts"])
        state.setdefault("extra_counts", [0] * len(state["prompts"]))
        state.setdefault("greedy_samples", None)
        state.setdefault("greedy_results", None)
        self.__dict__.update(state)

    @property
    def group_starts(self) -> list[int]:
        """Index of each group's first sample."""
        return list(itertools.accumulate(self.group_sizes, initial=0))[:-1]

    @property
    def group_ids(self) -> list[int]:
        """The prompt (group) index of each sample, ``[N]``: what group estimators take when sizes differ."""
        return [k for k, g in enumerate(self.group_sizes) for _ in range(g)]

    def groups(self) -> list[range]:
        """Each group's sample indices."""
        return [range(s, s + g) for s, g in zip(self.group_starts, self.group_sizes)]

    @property
    def rewards(self) -> list[float]:
        return [r.score for r in self.results]

    def prompt_of(self, i: int) -> PromptRow:
        if not 0 <= i < len(self.samples):
            raise IndexError(f"sample {i} of a batch of {len(self.samples)}")
        return self.prompts[bisect.bisect_right(self.group_starts, i) - 1]

    @property
    def truncated(self) -> list[bool]:
        return [s["finish_reason"] == "length" for s in self.samples]

    @property
    def response_lengths(self) -> list[int]:
        return [len(s["token_ids"]) for s in self.samples]

    @property
    def has_greedy(self) -> bool:
        return self.greedy_results is not None

    @property
    def greedy_rewards(self) -> list[float]:
        """The greedy response's verifier score for each sample's prompt, ``[N]`` (ReMax's baseline)."""
        if self.greedy_results is None:
            raise ValueError("this rollout batch has no greedy samples: they are generated only for an advantage "
                             "that needs a greedy baseline (algorithm.advantage=remax)")
        return [self.greedy_results[k].score for k in self.group_ids]

    @property
    def greedy_generated_tokens(self) -> int:
        return sum(len(s["token_ids"]) for s in self.greedy_samples or [])

    def pass_rates(self, first_round_only: bool = True) -> list[float]:
        """Per group: the fraction of correct samples; ``first_round_only``: of the samples from before any
        second round (what decides who gets extra samples)."""
        extra = self.extra_counts or [0] * len(self.prompts)
        out = []
        for idx, e in zip(self.groups(), extra):
            kept = idx[: len(idx) - e] if first_round_only else idx
            out.append(statistics.fmean(float(self.results[i].correct) for i in kept))
        return out

    def train_rows(self) -> TrainRows:
        """Prompt + response token ids and the sampler's log-probs; advantages come later. The greedy
        samples are not among them."""
        owners = [self.prompts[k] for k in self.group_ids]
        return TrainRows(
            input_ids=[p.token_ids + s["token_ids"] for p, s in zip(owners, self.samples)],
            prompt_lens=[len(p.token_ids) for p in owners],
            sampler_logprobs=[s["logprobs"] for s in self.samples] if all(s["logprobs"] for s in self.samples)
            else None,
        )

    def group_has_signal(self) -> list[bool]:
        """Per group: do its rewards differ? (DAPO dynamic sampling keeps only those.)"""
        ids = torch.tensor(self.group_ids, dtype=torch.long)  # dense, in group order: the result is too
        return (~zero_variance_groups(self.rewards, ids)).tolist()

    def select_groups(self, groups: list[int]) -> RolloutBatch:
        """The batch of groups ``groups`` (in that order), greedy samples and second-round counts with them."""
        spans = self.groups()
        idx = [i for k in groups for i in spans[k]]
        return RolloutBatch(
            [self.prompts[k] for k in groups], [self.samples[i] for i in idx], [self.results[i] for i in idx],
            [self.group_sizes[k] for k in groups], dict(self.timings),
            extra_counts=[(self.extra_counts or [])[k] for k in groups],
            greedy_samples=None if self.greedy_samples is None else [self.greedy_samples[k] for k in groups],
            greedy_results=None if self.greedy_results is None else [self.greedy_results[k] for k in groups],
        )

    def with_extra(self, groups: list[int], extra: RolloutBatch) -> RolloutBatch:
        """This batch with ``extra``'s group j appended to group ``groups[j]`` (a second round for those
        prompts); timings added up. The result keeps group-major order."""
        if len(groups) != len(extra.prompts) or any(extra.prompts[j] != self.prompts[k]
                                                    for j, k in enumerate(groups)):
            raise ValueError("with_extra: the extra batch's prompts must be this batch's prompts "
                             f"{groups}, in that order")
        add = dict(zip(groups, extra.groups()))
        samples: list[Sample] = []
        results: list[VerifyResult] = []
        sizes, counts = list(self.group_sizes), list(self.extra_counts or [])
        for k, idx in enumerate(self.groups()):
            samples += [self.samples[i] for i in idx]
            results += [self.results[i] for i in idx]
            if k in add:
                samples += [extra.samples[i] for i in add[k]]
                results += [extra.results[i] for i in add[k]]
                sizes[k] += len(add[k])
                counts[k] += len(add[k])
        timings = dict(self.timings)
        for key, v in extra.timings.items():
            timings[key] = timings.get(key, 0.0) + v
        return RolloutBatch(self.prompts, samples, results, sizes, timings, extra_counts=counts,
                            greedy_samples=self.greedy_samples, greedy_results=self.greedy_results)

    @staticmethod
    def concat(batches: list[RolloutBatch]) -> RolloutBatch:
        """Groups of ``batches`` one after another; timings added up. Greedy samples must be on all or none."""
        timings: dict[str, float] = {}
        for b in batches:
            for k, v in b.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        greedy = {b.has_greedy for b in batches}
        if len(greedy) > 1:
            raise ValueError("RolloutBatch.concat: some batches have greedy samples and others do not")
        with_greedy = greedy == {True}
        return RolloutBatch(
            [p for b in batches for p in b.prompts], [s for b in batches for s in b.samples],
            [r for b in batches for r in b.results], [g for b in batches for g in b.group_sizes], timings,
            extra_counts=[e for b in batches for e in b.extra_counts or []],
            greedy_samples=[s for b in batches for s in b.greedy_samples or []] if with_greedy else None,
            greedy_results=[r for b in batches for r in b.greedy_results or []] if with_greedy else None,
        )

    def metrics(self, prefix: str = "") -> dict[str, float]:
        lengths = self.response_lengths
        rewards = self.rewards
        reasons = [str(r.details.get("reason", "")) for r in self.results]
        gen_tokens = float(sum(lengths))
        m = {
            "reward/mean": statistics.fmean(rewards),
            "reward/std": statistics.pstdev(rewards),
            "accuracy": statistics.fmean(float(r.correct) for r in self.results),
            "response_length/mean": statistics.fmean(lengths),
            "response_length/max": float(max(lengths)),
            "response_length/clip_ratio": statistics.fmean(s["finish_reason"] == "length" for s in self.samples),
            "verify/timeouts": float(sum(r == "timeout" for r in reasons)),
            "verify/errors": float(sum(r.startswith("error") or r == "crash" for r in reasons)),
            "rollout/generated_tokens": gen_tokens,
            "rollout/extra_samples": float(sum(self.extra_counts or [])),
            "rollout/group_size_mean": statistics.fmean(self.group_sizes),
            "rollout/group_size_max": float(max(self.group_sizes)),
        }
        terms: dict[str, list[float]] = {}  # reward composition: the mean of each term (compose verifier)
        for r in self.results:
            for name, value in (r.details.get("terms") or {}).items():
                terms.setdefault(name, []).append(float(value))
        m.update({f"reward/terms/{name}": statistics.fmean(values) for name, values in terms.items()})
        groups = [[self.results[i].correct for i in idx] for idx in self.groups()]
        m["rollout/solve_none"] = statistics.fmean(not any(g) for g in groups)
        m["rollout/solve_all"] = statistics.fmean(all(g) for g in groups)
        if self.greedy_results is not None:
            m["rollout/greedy_reward_mean"] = statistics.fmean(r.score for r in self.greedy_results)
            m["rollout/greedy_accuracy"] = statistics.fmean(float(r.correct) for r in self.greedy_results)
            m["rollout/greedy_generated_tokens"] = float(self.greedy_generated_tokens)
        gen_s = self.timings.get("generate", 0.0)
        # the greedy responses came out of the same engine passes, so they count in the engines' throughput
        engine_tokens = gen_tokens + self.greedy_generated_tokens
        m["throughput/generate_tokens_per_s"] = engine_tokens / gen_s if gen_s > 0 else 0.0
        m.update({f"time/{k}_s": v for k, v in self.timings.items()})
        return {prefix + k: v for k, v in m.items()}

    def sample_records(self, k: int) -> list[dict[str, Any]]:
        """The first sample of the first ``k`` groups, for samples.jsonl (with the prompt's greedy response
        and its reward when the batch has them)."""
        out = []
        for g, i in list(enumerate(self.group_starts))[:k]:
            row, res = self.prompts[g], self.results[i]
            rec = {
                "prompt": row.text, "response": self.samples[i]["text"], "ground_truth": row.answer,
                "reward": res.score, "correct": res.correct, "finish_reason": self.samples[i]["finish_reason"],
                "details": res.details, "group_size": self.group_sizes[g],
            }
            if self.greedy_samples is not None and self.greedy_results is not None:
                rec["greedy_response"] = self.greedy_samples[g]["text"]
                rec["greedy_reward"] = self.greedy_results[g].score
            out.append(rec)
        return out


def verify_sample(row: PromptRow, sample: Sample) -> VerifySample:
    """What a verifier sees of one generated sample of ``row``."""
    return VerifySample(prompt=row.text, response=sample["text"], ground_truth=row.answer, metadata=row.metadata,
                        finish_reason=sample["finish_reason"], response_tokens=len(sample["token_ids"]))


def collect(
    rollouts: RolloutGroup, verify: VerifierPool, prompts: list[PromptRow], n: int, temperature: float,
    top_p: float, max_tokens: int, seed: int | None, greedy: bool = False,
) -> RolloutBatch:
    """Generate ``n`` samples per prompt through vLLM and score them with the verifiers.

    Each chunk's samples go to the verifier pool as soon as its engine returns them, so scoring overlaps
    the generation still running. ``timings["verify"]`` is the scoring time left after the last chunk
    came back (the part that adds to the step).

    ``greedy``: also one greedy (temperature 0) response per prompt, the ReMax baseline, generated in the
    same engine calls as the samples (each group comes back with it last: `RolloutWorker.generate`) and
    scored with them; it lands in ``greedy_samples`` / ``greedy_results``, not among the samples.
    """
    t0 = time.perf_counter()
    pending = []
    for start, groups in rollouts.generate_shards([p.token_ids for p in prompts], n, temperature, top_p,
                                                  max_tokens, seed, greedy=greedy):
        rows = prompts[start : start + len(groups)]
        want = n + 1 if greedy else n
        if any(len(g) != want for g in groups):
            raise RuntimeError(f"rollout generate: asked for {want} responses per prompt, got groups of "
                               f"{sorted({len(g) for g in groups})}")
        shard = [s for g in groups for s in g[:n]]
        best = [g[n] for g in groups] if greedy else []
        owners = [p for p in rows for _ in range(n)] + (rows if greedy else [])
        to_score = [verify_sample(p, s) for p, s in zip(owners, shard + best)]
        pending.append((start, shard, best,
                        verify.submit(to_score, [p.verifier or DEFAULT_VERIFIER for p in owners])))
    t1 = time.perf_counter()
    samples: list[Sample] = []
    results: list[VerifyResult] = []
    greedy_samples: list[Sample] = []
    greedy_results: list[VerifyResult] = []
    for _, shard, best, scored in sorted(pending, key=lambda item: item[0]):
        verdicts = scored.result()  # bounded: every task in the pool has a hard deadline
        samples += shard
        results += verdicts[: len(shard)]
        greedy_samples += best
        greedy_results += verdicts[len(shard) :]
    t2 = time.perf_counter()
    return RolloutBatch.equal_groups(
        prompts, samples, results, n, {"generate": t1 - t0, "verify": t2 - t1},
        greedy_samples=greedy_samples if greedy else None, greedy_results=greedy_results if greedy else None,
    )
