"""One rollout batch: generate a group per prompt, score every sample, summarise.

This is the "rollout + verification" half of a step, usable on its own (no learner needed).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from rlvr.algorithms.parts.shaping import zero_variance_groups
from rlvr.data.dataset import PromptRow
from rlvr.learner.batch import TrainRows
from rlvr.rollout.group import RolloutGroup
from rlvr.rollout.worker import Sample
from rlvr.verify import VerifierPool, VerifyResult, VerifySample
from rlvr.verify.specs import DEFAULT_VERIFIER


@dataclass
class RolloutBatch:
    prompts: list[PromptRow]
    samples: list[Sample]  # group-major: prompt 0's n samples, then prompt 1's, ...
    results: list[VerifyResult]
    group_size: int
    timings: dict[str, float]

    @property
    def rewards(self) -> list[float]:
        return [r.score for r in self.results]

    def prompt_of(self, i: int) -> PromptRow:
        return self.prompts[i // self.group_size]

    @property
    def truncated(self) -> list[bool]:
        return [s["finish_reason"] == "length" for s in self.samples]

    @property
    def response_lengths(self) -> list[int]:
        return [len(s["token_ids"]) for s in self.samples]

    def train_rows(self) -> TrainRows:
        """Prompt + response token ids and the sampler's log-probs; advantages come later."""
        return TrainRows(
            input_ids=[self.prompt_of(i).token_ids + s["token_ids"] for i, s in enumerate(self.samples)],
            prompt_lens=[len(self.prompt_of(i).token_ids) for i in range(len(self.samples))],
            sampler_logprobs=[s["logprobs"] for s in self.samples] if all(s["logprobs"] for s in self.samples)
            else None,
        )

    def group_has_signal(self) -> list[bool]:
        """Per group: do its rewards differ? (DAPO dynamic sampling keeps only those.)"""
        return (~zero_variance_groups(self.rewards, self.group_size)).tolist()

    def select_groups(self, groups: list[int]) -> RolloutBatch:
        g = self.group_size
        idx = [k * g + j for k in groups for j in range(g)]
        return RolloutBatch([self.prompts[k] for k in groups], [self.samples[i] for i in idx],
                            [self.results[i] for i in idx], g, dict(self.timings))

    @staticmethod
    def concat(batches: list[RolloutBatch]) -> RolloutBatch:
        timings: dict[str, float] = {}
        for b in batches:
            for k, v in b.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        return RolloutBatch([p for b in batches for p in b.prompts], [s for b in batches for s in b.samples],
                            [r for b in batches for r in b.results], batches[0].group_size, timings)

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
        }
        terms: dict[str, list[float]] = {}  # reward composition: the mean of each term (compose verifier)
        for r in self.results:
            for name, value in (r.details.get("terms") or {}).items():
                terms.setdefault(name, []).append(float(value))
        m.update({f"reward/terms/{name}": statistics.fmean(values) for name, values in terms.items()})
        correct = [r.correct for r in self.results]
        groups = [correct[i : i + self.group_size] for i in range(0, len(correct), self.group_size)]
        m["rollout/solve_none"] = statistics.fmean(not any(g) for g in groups)
        m["rollout/solve_all"] = statistics.fmean(all(g) for g in groups)
        gen_s = self.timings.get("generate", 0.0)
        m["throughput/generate_tokens_per_s"] = gen_tokens / gen_s if gen_s > 0 else 0.0
        m.update({f"time/{k}_s": v for k, v in self.timings.items()})
        return {prefix + k: v for k, v in m.items()}

    def sample_records(self, k: int) -> list[dict[str, Any]]:
        """The first sample of the first ``k`` groups, for samples.jsonl."""
        out = []
        for g in range(min(k, len(self.prompts))):
            i = g * self.group_size
            row, res = self.prompts[g], self.results[i]
            out.append({
                "prompt": row.text, "response": self.samples[i]["text"], "ground_truth": row.answer,
                "reward": res.score, "correct": res.correct, "finish_reason": self.samples[i]["finish_reason"],
                "details": res.details,
            })
        return out


def verify_sample(row: PromptRow, sample: Sample) -> VerifySample:
    """What a verifier sees of one generated sample of ``row``."""
    return VerifySample(prompt=row.text, response=sample["text"], ground_truth=row.answer, metadata=row.metadata,
                        finish_reason=sample["finish_reason"], response_tokens=len(sample["token_ids"]))


def collect(
    rollouts: RolloutGroup, verify: VerifierPool, prompts: list[PromptRow], n: int, temperature: float,
    top_p: float, max_tokens: int, seed: int | None,
) -> RolloutBatch:
    """Generate ``n`` samples per prompt through vLLM and score them with the verifiers.

    Each chunk's samples go to the verifier pool as soon as its engine returns them, so scoring overlaps
    the generation still running. ``timings["verify"]`` is the scoring time left after the last chunk
    came back (the part that adds to the step).
    """
    t0 = time.perf_counter()
    pending = []
    for start, groups in rollouts.generate_shards([p.token_ids for p in prompts], n, temperature, top_p,
                                                  max_tokens, seed):
        owners = [p for p in prompts[start : start + len(groups)] for _ in range(n)]
        shard = [s for g in groups for s in g]
        to_score = [verify_sample(p, s) for p, s in zip(owners, shard)]
        pending.append((start, shard, verify.submit(to_score, [p.verifier or DEFAULT_VERIFIER for p in owners])))
    t1 = time.perf_counter()
    samples: list[Sample] = []
    results: list[VerifyResult] = []
    for _, shard, scored in sorted(pending, key=lambda item: item[0]):
        samples += shard
        results += scored.result()  # bounded: every task in the pool has a hard deadline
    t2 = time.perf_counter()
    return RolloutBatch(prompts, samples, results, n, {"generate": t1 - t0, "verify": t2 - t1})
