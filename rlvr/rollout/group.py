"""A thin handle over N rollout engines (Ray actors): prompts are spread over the engines in chunks, each
engine taking the next chunk when it is free, and the results come back in prompt order, or chunk by chunk
as they finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ray

from rlvr.config.schema import RecipeConfig
from rlvr.placement import Placement
from rlvr.remote import WorkerError, shard_ranges, track, wait
from rlvr.rollout.worker import RolloutWorker, Sample, transfer_settings
from rlvr.worker_log import role_log


class RolloutGroup:
    def __init__(
        self, cfg: RecipeConfig, max_model_len: int, timeout_s: float, placement: Placement,
        worker_cls: type[RolloutWorker] = RolloutWorker, log_dir: str | None = None,
    ) -> None:
        """``log_dir``: engine i's output goes to ``log_dir/rollout-<i>.log`` (`rlvr.worker_log`)."""
        self.cfg, self.timeout_s = cfg, timeout_s
        r = cfg.rollout
        vllm_kwargs = dict(r.vllm)
        if r.tensor_parallel_size > 1:  # vLLM's Ray executor, workers on the engine's bundles (rlvr.placement)
            vllm_kwargs.update(tensor_parallel_size=r.tensor_parallel_size, distributed_executor_backend="ray")
        actor = ray.remote(worker_cls)
        logs = [role_log(log_dir, "rollout", i) for i in range(len(placement.layout.engines))]
        self.workers = [
            actor.options(**placement.options(slot)).remote(
                cfg.model.source, cfg.model.dtype, cfg.run.seed + i, max_model_len, r.kv_cache_gib,
                r.gpu_memory_utilization, vllm_kwargs, **transfer_settings(cfg), log_path=logs[i],
                verbose=cfg.logging.verbose,
            )
            for i, slot in enumerate(placement.layout.engines)
        ]
        for i, w in enumerate(self.workers):
            track(w, f"rollout engine {i}", logs[i])

    def wait_ready(self) -> list[dict[str, Any]]:
        return wait([w.ready.remote() for w in self.workers], self.timeout_s, "rollout engine start-up")

    def generate(
        self, prompt_ids: list[list[int]], n: int, temperature: float, top_p: float, max_tokens: int,
        seed: int | None,
    ) -> list[list[Sample]]:
        """Groups of ``n`` samples, one per prompt, in prompt order."""
        shards = sorted(self.generate_shards(prompt_ids, n, temperature, top_p, max_tokens, seed))
        return [group for _, groups in shards for group in groups]

    def generate_shards(
        self, prompt_ids: list[list[int]], n: int, temperature: float, top_p: float, max_tokens: int,
        seed: int | None, greedy: bool = False,
    ) -> Iterator[tuple[int, list[list[Sample]]]]:
        """``(first prompt index, groups)`` per chunk of prompts, in the order they finish, so the caller can
        score one chunk's samples while the engines still generate. ``greedy``: each group ends with one
        greedy response more, from the same engine call (`RolloutWorker.generate`).

        Load balancing: with several engines the prompts are cut into ``rollout.chunks_per_engine`` chunks
        per engine and each engine takes the next chunk when it finishes one, so an engine that drew long
        responses does not hold the step while the others idle. Prompt i's seed range depends only on i,
        so the samples do not depend on which engine took which chunk."""
        k = self.cfg.rollout.chunks_per_engine if len(self.workers) > 1 else 1
        todo = [p for p in shard_ranges(len(prompt_ids), len(self.workers) * k) if len(p)]
        todo.reverse()  # pop() hands out chunks in prompt order
        pending: dict[Any, tuple[Any, range]] = {}

        def dispatch(worker: Any) -> None:
            part = todo.pop()
            ref = worker.generate.remote([prompt_ids[i] for i in part], n, temperature, top_p, max_tokens,
                                         None if seed is None else seed + part.start * n, greedy)
            pending[ref] = (worker, part)

        for w in self.workers:
            if todo:
                dispatch(w)
        deadline = time.monotonic() + self.timeout_s
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                wait(list(pending), 0, "rollout generate")  # names the engines that did not answer
                raise WorkerError(f"rollout generate: no answer within {self.timeout_s:.0f} s")
            worker, part = pending.pop(ready[0])
            groups = wait(ready[0], self.timeout_s, "rollout generate")
            if todo:
                dispatch(worker)
            yield part.start, groups

    def sequence_logprobs(self, token_ids: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        """Teacher-forced log-probs from the first engine (used to check weight sync)."""
        ref = self.workers[0].sequence_logprobs.remote(token_ids, prompt_lens)
        return wait(ref, self.timeout_s, "rollout sequence_logprobs")

    def update_weights(self, named: Any, version: int | None) -> list[dict[str, float]]:
        """``named``: a dict of tensors or a Ray ObjectRef to one (sent engine to engine, not via the driver)."""
        refs = [w.update_weights.remote(named, version) for w in self.workers]
        return wait(refs, self.timeout_s, "rollout update_weights")

    def load_adapter(self, adapter: Any, version: int | None) -> list[dict[str, float]]:
        """Every engine serves the LoRA adapter ``adapter`` (an ObjectRef of the learner's export) from now on."""
        refs = [w.load_adapter.remote(adapter, version) for w in self.workers]
        return wait(refs, self.timeout_s, "rollout load_adapter")

    def unloaded(self) -> list[dict[str, Any]]:
        """Per engine: the parameters no update wrote since the last call, and its sleep-preserve globs."""
        return wait([w.unloaded.remote() for w in self.workers], self.timeout_s, "rollout unloaded parameters")

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)
