"""The learner role: a Ray actor that owns one DeepSpeed data-parallel rank.

It computes log-probs (policy and frozen reference), runs the loss module over token-budget
micro-batches with one optimizer step per mini-batch, exports weights for the sync and saves
Hugging Face checkpoints. Ranks of one group form a DeepSpeed process group (gloo on CPU, NCCL on
GPU) through the usual RANK/WORLD_SIZE/MASTER_ADDR environment.

On GPU the weight sync uses vLLM's trainer-side weight-transfer engines (NCCL broadcast or CUDA IPC):
every rank builds one and iterates `rlvr.learner.sync_source.bucket_source` (ZeRO-3 gathers are
collectives), rank 0 sends and drives the engines through `EngineClient`. Calls that allocate return
the CUDA cache when they end (`rlvr.learner.memory`), so colocated engines can wake.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from rlvr.algorithms.base import AggNorm, LossInput
from rlvr.config.schema import RecipeConfig
from rlvr.learner.batch import MicroBatch, TrainRows, collate, token_budget_chunks, unscatter
from rlvr.learner.memory import releases_cuda_cache
from rlvr.learner.sync_source import bucket_source, sync_params


class EngineClient:
    """vLLM's ``VLLMWeightSyncClient`` protocol (four methods, structural) over rlvr's rollout actors,
    so vLLM's trainer engines drive our engines' ``transfer_*`` methods with rlvr's deadlines.

    vLLM's NCCL trainer hands every engine the same ``rank_offset`` (1: after the sender), which fits
    one vLLM deployment; rlvr runs one ``LLM`` per actor, each numbering its workers from 0, so engine
    i's offset is shifted by the workers of the engines before it (``engine_ranks``)."""

    def __init__(self, engines: list[Any], engine_ranks: list[int], timeout_s: float) -> None:
        self.engines, self.timeout_s = engines, timeout_s
        self.offsets = [sum(engine_ranks[:i]) for i in range(len(engines))]
        self.version: int | None = None  # stamped on the engines by `finish_weight_update`

    def _all(self, what: str, calls: list[Any]) -> None:
        from rlvr.remote import wait

        wait(calls, self.timeout_s, f"rollout {what}")

    def init_infos(self, init_info: dict[str, Any]) -> list[dict[str, Any]]:
        """Engine i's copy of the worker init info: NCCL ranks shifted past the engines before it."""
        if "rank_offset" not in init_info:  # IPC: no ranks
            return [init_info for _ in self.engines]
        return [{**init_info, "rank_offset": init_info["rank_offset"] + off} for off in self.offsets]

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        infos = self.init_infos(init_info)
        self._all("transfer init", [e.transfer_init.remote(info) for e, info in zip(self.engines, infos)])

    def start_weight_update(self) -> None:
        self._all("transfer start", [e.transfer_start.remote() for e in self.engines])

    def update_weights(self, update_info: dict[str, Any] | list[dict[str, Any]]) -> None:
        self._all("transfer update", [e.transfer_update.remote(update_info) for e in self.engines])

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._all("transfer finish", [e.transfer_finish.remote(self.version) for e in self.engines])


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np

    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logits [B, T, V]``, ``targets [B, T]`` -> log-prob of each target ``[B, T]``."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution ``[B, T]``."""
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class LearnerWorker:
    """One data-parallel rank. Wrapped with ``ray.remote`` by `rlvr.learner.group`."""

    def __init__(self, cfg: RecipeConfig, rank: int, world_size: int, master_addr: str, master_port: int) -> None:
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        os.environ.update(
            RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE=str(world_size),
            MASTER_ADDR=master_addr, MASTER_PORT=str(master_port),
        )
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            # Colocated on CPU the learner and the engine take turns, so each may use every core.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        self.temperature = cfg.rollout.temperature
        self._own_norm: float | None = None  # rlvr's gradient norm where DeepSpeed reports none (no ZeRO)

    def ready(self) -> dict[str, Any]:
        """Where this rank runs. Driven directly, outside Ray (a benchmark or a GPU check on a machine without
        Ray): this host and process."""
        try:
            import ray
        except ImportError:
            ray = None
        if ray is not None and ray.is_initialized():
            from rlvr.remote import placement

            return {**placement(), "rank": self.rank}
        import socket

        return {"node": socket.gethostname(), "ip": "127.0.0.1", "pid": os.getpid(), "rank": self.rank}

    def _init_rank(self) -> dict[str, Any]:
        """What every rank of every role does first: seed, join the process group, load the
        tokenizer (padding id). Returns the ``from_pretrained`` kwargs for the model source."""
        import deepspeed
        from transformers import AutoTokenizer

        cfg = self.cfg
        torch.manual_seed(cfg.run.seed)
        deepspeed.init_distributed(dist_backend="nccl" if self.device.type == "cuda" else "gloo")
        load: dict[str, Any] = {"revision": cfg.model.revision} if cfg.model.hub else {}
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model.source, **load)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.master_dtype = getattr(torch, cfg.learner.master_dtype)
        self.ref = None
        return load

    def _initialize(self, model: torch.nn.Module, ds_config: dict[str, Any], lr_scheduler: Any = None) -> None:
        import deepspeed

        if self.cfg.learner.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.engine, *_ = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=ds_config,
            lr_scheduler=lr_scheduler,
        )

    def setup(self) -> dict[str, Any]:
        import deepspeed
        from transformers import AutoModelForCausalLM

        from rlvr.algorithms import get_algorithm
        from rlvr.learner.deepspeed_config import inference_config, train_config, warmup_scheduler

        cfg, load = self.cfg, self._init_rank()
        model = AutoModelForCausalLM.from_pretrained(cfg.model.source, dtype=self.master_dtype, **load)
        self.tied = bool(getattr(model.config, "tie_word_embeddings", False))
        self._initialize(model, train_config(cfg, self.world_size), warmup_scheduler(cfg))
        self.algorithm = get_algorithm(cfg.algorithm, max_new_tokens=cfg.rollout.max_new_tokens)
        if self.algorithm.needs_reference:
            ref_model = AutoModelForCausalLM.from_pretrained(cfg.model.source, dtype=self.master_dtype, **load)
            ref_model.requires_grad_(False)
            self.ref, *_ = deepspeed.initialize(model=ref_model, config=inference_config(cfg, self.world_size))
            self.ref.eval()
        params = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())  # ZeRO-3 partitions numel
        return {"params": params, "tied_embeddings": self.tied, **self.ready()}

    # ---- micro-batching -------------------------------------------------------------------

    def _chunks(self, rows: TrainRows) -> list[list[int]]:
        """Token-budget micro-batches, padded with empty ones so every rank runs the same number
        of forward/backward passes (ZeRO's collectives happen inside them)."""
        chunks = token_budget_chunks([len(x) for x in rows.input_ids], self.cfg.learner.micro_batch_tokens)
        if self.world_size > 1:
            import torch.distributed as dist

            n = torch.tensor([len(chunks)])
            dist.all_reduce(n, op=dist.ReduceOp.MAX)
            chunks += [[] for _ in range(int(n.item()) - len(chunks))]
        return chunks

    def _micro(self, rows: TrainRows, idx: list[int]) -> tuple[TrainRows, MicroBatch, bool]:
        empty = not idx
        sub = rows.select(idx or [0])
        mb = collate(sub, self.pad_id, self.device)
        if empty:  # a stand-in pass that contributes nothing
            mb.mask.zero_()
        return sub, mb, empty

    def _forward(
        self, module: Any, mb: MicroBatch, entropy: bool = False, entropy_grad: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs of the targets at the sampling temperature ``[B, T]`` and, when asked, the
        token entropy ``[B, T]`` (with gradient only for an entropy bonus)."""
        logits = module(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits[:, :-1]  # [B, T, V]
        logits = logits / self.temperature
        ent = None
        if entropy:
            if entropy_grad:
                ent = token_entropy(logits)
            else:
                with torch.no_grad():
                    ent = token_entropy(logits.detach())
        return token_logprobs(logits, mb.targets), ent

    # ---- remote API ----------------------------------------------------------------------

    @releases_cuda_cache
    @torch.no_grad()
    def compute_logprobs(self, rows: TrainRows, which: str = "policy") -> list[list[float]]:
        """Per-response-token log-probs under the current policy or the frozen reference."""
        module = self.engine if which == "policy" else self.ref
        if module is None:
            raise RuntimeError("no reference model: the algorithm does not need one (algorithm.kl_coef = 0)")
        module.eval()
        out: list[list[float]] = [[] for _ in range(len(rows))]
        for idx in self._chunks(rows):
            sub, mb, empty = self._micro(rows, idx)
            lp, _ = self._forward(module, mb, entropy=False)
            if not empty:
                for i, vals in zip(idx, unscatter(lp, sub)):
                    out[i] = vals
        return out

    def _accumulate(self, rows: TrainRows, num_tokens: float, num_sequences: float, kl_coef: float) -> dict[str, float]:
        """Forward/backward over this rank's rows in token-budget micro-batches; the gradient
        accumulation boundary falls on the last one. Returns metric sums over response tokens."""
        self.engine.train()
        self.algorithm.kl_coef = kl_coef
        norm = AggNorm(num_tokens=num_tokens, num_sequences=num_sequences, constant=self.algorithm.agg_constant)
        want_entropy_grad = self.cfg.algorithm.entropy_coef > 0
        sums: dict[str, float] = {}

        def add(name: str, value: torch.Tensor | float) -> None:
            sums[name] = sums.get(name, 0.0) + float(value)

        chunks = self._chunks(rows)
        for k, idx in enumerate(chunks):
            _, mb, empty = self._micro(rows, idx)
            self.engine.set_gradient_accumulation_boundary(k == len(chunks) - 1)
            logprobs, entropy = self._forward(self.engine, mb, entropy=True, entropy_grad=want_entropy_grad)
            old = mb.old_logprobs if mb.old_logprobs is not None else logprobs.detach()
            batch = LossInput(
                logprobs=logprobs, old_logprobs=old, advantages=mb.advantages, mask=mb.mask,
                ref_logprobs=mb.ref_logprobs, sampler_logprobs=mb.sampler_logprobs,
                entropy=entropy if want_entropy_grad else None, row_values=mb.row_values,
            )
            loss, metric_sums = self.algorithm.loss(batch, norm)
            # DeepSpeed averages gradients over ranks; the normaliser is already global, so undo it.
            self.engine.backward(loss * self.world_size)
            if empty:
                continue
            for name, value in metric_sums.items():
                add(f"sum/{name}", value)
            add("part/loss", loss.detach())
            with torch.no_grad():
                add("sum/actor/entropy", (entropy.detach() * mb.mask).sum())
                if mb.sampler_logprobs is not None:
                    add("sum/rollout/logprob_abs_diff", ((old - mb.sampler_logprobs).abs() * mb.mask).sum())
        return sums

    @releases_cuda_cache
    def train_step(
        self, rows: TrainRows, num_tokens: float, num_sequences: float, kl_coef: float = 0.0
    ) -> dict[str, float]:
        """One optimizer step over this rank's share of a mini-batch. ``num_tokens`` and
        ``num_sequences`` count the whole mini-batch over all ranks (global normalisers)."""
        start = time.perf_counter()
        result = self._accumulate(rows, num_tokens, num_sequences, kl_coef)
        result.setdefault("part/loss", 0.0)
        result["lr"] = float(self.engine.get_lr()[0])  # the rate this update uses (the schedule steps with it)
        result["skipped"] = 0.0 if self._optimizer_step() else 1.0
        result["grad_norm"] = self._grad_norm(result["skipped"])
        result["time/update_rank"] = time.perf_counter() - start
        return result

    @releases_cuda_cache
    def compute_gradients(
        self, rows: TrainRows, num_tokens: float, num_sequences: float, kl_coef: float = 0.0,
        algorithm: dict[str, Any] | None = None,
    ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """(loss and metric sums, full gradients by parameter name) of one mini-batch share, without
        stepping, optionally with ``algorithm`` fields changed (e.g. another aggregation mode or an
        entropy bonus). For tests: the result must not depend on micro-batching or the number of ranks,
        and each setting must reach the loss."""
        from deepspeed.utils import safe_get_full_grad, safe_set_full_grad

        from rlvr.algorithms import get_algorithm

        cfg, loss_module = self.cfg, self.algorithm
        if algorithm:
            self.cfg = cfg.model_copy(update={"algorithm": cfg.algorithm.model_copy(update=algorithm)})
            self.algorithm = get_algorithm(self.cfg.algorithm, max_new_tokens=cfg.rollout.max_new_tokens)
        named = self._named_params()
        try:
            sums = self._accumulate(rows, num_tokens, num_sequences, kl_coef)
            grads = {n: safe_get_full_grad(p).detach().clone() for n, p in named}
        finally:
            self.cfg, self.algorithm = cfg, loss_module
            # No step will consume these gradients: clear ZeRO's accumulation buffers too (zero_grad alone
            # leaves ZeRO-1/2's partitioned sums, which the next call would add to).
            for _, p in named:
                full = safe_get_full_grad(p)
                if full is not None:
                    safe_set_full_grad(p, torch.zeros_like(full))
            self.engine.optimizer.zero_grad()
        return sums, {n: g.cpu() for n, g in grads.items()}

    def _optimizer_step(self) -> bool:
        """The optimizer step, unless the loss or a gradient is NaN/Inf on any rank: then the update is
        skipped (weights, optimizer moments and LR schedule untouched, gradients cleared) and False
        returned. ZeRO 1-3 decide it inside DeepSpeed's step (its overflow check, agreed over ranks);
        without ZeRO rlvr checks the gradients itself first, as DeepSpeed would apply them."""
        import torch.distributed as dist

        self._own_norm = None
        if self.cfg.learner.zero_stage == 0:  # gradients are whole (and already averaged) on every rank
            params = self.engine.module.parameters()
            grads = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
            norm = torch.stack(grads).sum().sqrt() if grads else torch.zeros((), dtype=torch.float64)
            flag = torch.tensor([0.0 if torch.isfinite(norm) else 1.0], device=self.device)
            if self.world_size > 1:
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() > 0:
                self.engine.optimizer.zero_grad(set_to_none=True)
                return False
            self._own_norm = float(norm)  # DeepSpeed reports none without ZeRO
        before = self.engine.skipped_steps
        self.engine.step()
        return self.engine.skipped_steps == before

    def _grad_norm(self, skipped: float) -> float:
        """The pre-clipping gradient norm of the last step (0 when it was skipped)."""
        norm = self._own_norm if self._own_norm is not None else self.engine.get_global_grad_norm()
        return 0.0 if skipped or norm is None or not math.isfinite(float(norm)) else float(norm)

    # ---- weights ---------------------------------------------------------------------------

    def _named_params(self):
        return list(self.engine.module.named_parameters())

    def weight_manifest(self) -> list[tuple[str, int]]:
        """(Hugging Face name, bytes) of everything the engines receive, in order (`sync_params`: a tied
        output layer under its own name); plans the sync buckets."""
        return [(n, p.ds_numel * p.element_size() if hasattr(p, "ds_numel") else p.numel() * p.element_size())
                for n, p in sync_params(self.engine.module)]

    @releases_cuda_cache
    def export_weights(self, names: list[str], dtype: str | None = None) -> dict[str, torch.Tensor]:
        """Full (gathered) CPU copies of the named parameters (`sync_params` names). Under ZeRO-3 every
        rank must call this (the gather is collective); only rank 0 returns tensors."""
        import deepspeed

        wanted = set(names)
        params = [(n, p) for n, p in sync_params(self.engine.module) if n in wanted]
        cast = getattr(torch, dtype) if dtype else None
        unique = list({id(p): p for _, p in params}.values())  # a tied alias is gathered once
        with deepspeed.zero.GatheredParameters(unique, enabled=self.cfg.learner.zero_stage == 3):
            if self.rank != 0:
                return {}
            return {n: p.detach().to("cpu", dtype=cast or p.dtype).clone() for n, p in params}

    def gpu_uuid(self) -> str | None:
        """The physical GPU of this rank (None on CPU): the weight sync checks placement with it."""
        if self.device.type != "cuda":
            return None
        return str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)

    def init_weight_transfer(
        self, backend: str, engines: list[Any], engine_ranks: list[int], buckets: list[list[str]],
        bucket_bytes: int, timeout_s: float,
    ) -> None:
        """Build vLLM's trainer-side engine for ``backend`` ("nccl" | "ipc") on every rank; rank 0
        is the sender (for NCCL it opens the group's store and the engines join it now).

        Transfers are packed into chunks of ``bucket_bytes`` (at least the largest tensor, which an
        IPC chunk must hold), the same size as the ZeRO-3 gather buckets."""
        from vllm.distributed.weight_transfer import WeightTransferTrainerFactory

        from rlvr.remote import free_port

        dtype = getattr(torch, self.cfg.model.dtype)
        source = bucket_source(sync_params(self.engine.module), buckets, dtype, self.cfg.learner.zero_stage == 3,
                               self.device)
        meta = source.metadata()
        chunk = max([bucket_bytes] + [m.dtype.itemsize * math.prod(m.shape) for m in meta])
        self._sync_bytes = float(sum(m.dtype.itemsize * math.prod(m.shape) for m in meta))
        self._client = EngineClient(engines, engine_ranks, timeout_s)
        if backend == "nccl":
            import ray
            from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

            # Only rank 0 (the sender) uses the address: it hosts the group's store there.
            info: Any = NCCLTrainerInitInfo(
                rank=self.rank, master_address=ray.util.get_node_ip_address(), master_port=free_port(),
                world_size=1 + sum(engine_ranks), packed=True, packed_buffer_size_bytes=chunk,
            )
        elif backend == "ipc":
            from vllm.distributed.weight_transfer.ipc_engine import IPCTrainerInitInfo

            info = IPCTrainerInitInfo(rank=self.rank, packed=True, packed_buffer_size_bytes=chunk)
        else:
            raise ValueError(f"weight transfer backend {backend!r}: expected nccl or ipc")
        self._transfer = WeightTransferTrainerFactory.trainer_init(info, client=self._client, source=source)

    @releases_cuda_cache  # the packed transfer buffer and the gathered copies
    def send_weights(self, version: int) -> dict[str, float]:
        """One full sync through vLLM's transfer engine (every rank calls it; rank 0 sends): start,
        the chunks, finish. Bytes: the whole model at the engines' dtype (what each engine receives)."""
        start = time.perf_counter()
        self._client.version = version
        self._transfer.send_weights()
        return {"bytes": self._sync_bytes, "seconds": time.perf_counter() - start}

    # ---- checkpoints -----------------------------------------------------------------------

    def save_state(self, path: str) -> None:
        """Every rank: DeepSpeed's checkpoint (weights, optimizer, LR scheduler, this rank's ZeRO shards;
        collective) and this rank's RNG states, so a resumed run continues the same random streams."""
        self.engine.save_checkpoint(path, tag="state", client_state={"rlvr_rank": self.rank})
        torch.save(_rng_state(), Path(path) / f"rng_rank{self.rank}.pt")

    def load_state(self, path: str) -> None:
        """Every rank: restore what `save_state` wrote (needs the same number of ranks and ZeRO stage)."""
        rng = Path(path) / f"rng_rank{self.rank}.pt"
        if not rng.is_file():
            raise FileNotFoundError(f"{rng} is missing: the checkpoint was written by fewer learner ranks "
                                    f"than the {self.world_size} of this run (learner.num_ranks must not change)")
        loaded, _ = self.engine.load_checkpoint(path, tag="state", load_optimizer_states=True,
                                                load_lr_scheduler_states=True)
        if loaded is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {path}/state")
        _set_rng_state(torch.load(rng, weights_only=False))

    def save_hf(self, path: str) -> str:
        """Write a Hugging Face checkpoint (safetensors + tokenizer) atomically: to a temporary
        folder first, renamed into place when complete."""
        names = [n for n, _ in self._named_params()]
        state = self.export_weights(names, dtype=self.cfg.model.dtype)
        if self.rank != 0:
            return path
        final = Path(path)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        module = self.engine.module
        module.config.dtype = self.cfg.model.dtype
        module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        self.tokenizer.save_pretrained(tmp)
        if getattr(module, "generation_config", None) is not None:
            module.generation_config.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return str(final)
