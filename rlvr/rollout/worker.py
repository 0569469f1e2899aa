"""The rollout role: a Ray actor that owns one vLLM engine.

Each sample keeps its token ids, the sampler's per-token log-probs and its finish reason, because
the learner needs exactly what was sampled (re-tokenising text is lossy) and the sampler's
log-probs measure the rollout/learner mismatch. Weights arrive in place through vLLM's
``reload_weights`` (Hugging Face names, no disk round trip).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

Sample = dict[str, Any]  # {"token_ids": list[int], "logprobs": list[float], "finish_reason": str, "text": str}


class RolloutWorker:
    """One vLLM engine. Wrapped with ``ray.remote`` by `rlvr.rollout.group`."""

    def __init__(
        self,
        model: str,
        dtype: str,
        seed: int,
        max_model_len: int,
        kv_cache_gib: int,
        gpu_memory_utilization: float,
        tie_word_embeddings: bool,
        vllm_kwargs: dict[str, Any],
    ) -> None:
        # Keep the engine core in this process (one actor = one engine); size the CPU KV cache
        # explicitly, otherwise vLLM reserves several GiB per engine.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_cpu = not torch.cuda.is_available()
        if on_cpu:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
        from vllm import LLM

        kwargs: dict[str, Any] = {
            "model": model,
            "dtype": dtype,
            "seed": seed,
            "max_model_len": max_model_len,
            # Sampler log-probs after temperature/top-p: the distribution that actually sampled,
            # which is what the learner's ratio and the mismatch metric compare against.
            "logprobs_mode": "processed_logprobs",
            "enable_prefix_caching": False,
        }
        if not on_cpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        kwargs.update(vllm_kwargs)
        self._tied = tie_word_embeddings
        self.llm = LLM(**kwargs)
        self.weight_version = 0

    def ready(self) -> dict[str, Any]:
        from rlvr.remote import placement

        return placement()

    def generate(
        self,
        prompt_token_ids: list[list[int]],
        n: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int | None = None,
    ) -> list[list[Sample]]:
        """``n`` samples for each prompt, in prompt order."""
        from vllm import SamplingParams

        def params(prompt_seed: int | None) -> SamplingParams:
            return SamplingParams(
                n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                logprobs=0,  # the sampled token's own log-prob
                seed=prompt_seed,
            )

        # One seed for every request would make prompt k's i-th sample reuse the random stream of
        # every other prompt's i-th sample (vLLM derives child seeds as seed + i). Each prompt gets
        # its own range instead; without a seed the engine's seeded generator is used.
        per_prompt = [params(None if seed is None else seed + k * n) for k in range(len(prompt_token_ids))]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_token_ids], per_prompt, use_tqdm=False
        )
        groups: list[list[Sample]] = []
        for out in outputs:
            group = []
            for comp in out.outputs:
                ids = list(comp.token_ids)
                steps = (comp.logprobs or []) if temperature > 0 else []
                lps = [float(step[tok].logprob) for tok, step in zip(ids, steps)]
                group.append(
                    {
                        "token_ids": ids,
                        "logprobs": lps,
                        "finish_reason": comp.finish_reason or "stop",
                        "text": comp.text,
                        "weight_version": self.weight_version,
                    }
                )
            groups.append(group)
        return groups

    def sequence_logprobs(self, token_ids: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        """Log-probs the engine assigns to given responses (teacher forcing via prompt_logprobs).

        Used to prove the weight sync: after an update these must match the learner's.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in token_ids], params, use_tqdm=False)
        result = []
        for out, ids, plen in zip(outs, token_ids, prompt_lens):
            plps = out.prompt_logprobs  # position 0 is None
            result.append([float(plps[t][ids[t]].logprob) for t in range(plen, len(ids))])
        return result

    def update_weights(self, named: dict[str, torch.Tensor], version: int | None = None) -> dict[str, float]:
        """Load a bucket of Hugging Face-named tensors into the running engine, in place."""
        start = time.perf_counter()
        items = list(named.items())
        if self._tied and "model.embed_tokens.weight" in named and "lm_head.weight" not in named:
            # vLLM keeps a separate output layer for tied models after reload_weights (see
            # ENVIRONMENT.md): push the embedding to it explicitly.
            items.append(("lm_head.weight", named["model.embed_tokens.weight"]))
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": items, "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()
        if version is not None:
            self.weight_version = version
        nbytes = sum(t.numel() * t.element_size() for _, t in items)
        return {"bytes": float(nbytes), "seconds": time.perf_counter() - start}
