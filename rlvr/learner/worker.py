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

import importlib.util
import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from rlvr.algorithms.base import AggNorm, LossInput
from rlvr.config.schema import RecipeConfig
from rlvr.learner.batch import MicroBatch, TrainRows, collate, unscatter
from rlvr.learner.logprobs import chunked_logprobs, token_entropy, token_logprobs
from rlvr.learner.lora import numel, trainable
from rlvr.learner.memory import releases_cuda_cache
from rlvr.learner.packing import VARLEN_KERNELS, pack, packed_micro_batches, packing_choice, padded_bins
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


class LearnerWorker:
    """One data-parallel rank. Wrapped with ``ray.remote`` by `rlvr.learner.group`."""

    def __init__(self, cfg: RecipeConfig, rank: int, world_size: int, master_addr: str, master_port: int,
                 log_path: str | None = None) -> None:
        from rlvr.worker_log import redirect_output

        redirect_output(log_path, tee=cfg.logging.verbose)  # before DeepSpeed or transformers print anything
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        os.environ.update(
            RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE=str(world_size),
            MASTER_ADDR=master_addr, MASTER_PORT=str(master_port),
        )
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            from rlvr.cpu_pinning import pin_process, wants_pinning

            if wants_pinning(cfg.resources.pin_cpus, cfg.rollout.max_staleness):
                # Asynchronous: engines generate while the learners train, each on its own cores.
                torch.set_num_threads(max(1, len(pin_process("learners")) // world_size))
            else:
                # Synchronous on CPU the learner and the engine take turns, so each may use every core.
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        self.temperature = cfg.rollout.temperature
        self.lora = None  # the policy's LoRA settings once set up (a critic trains in full)
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
        if (self.device.type == "cuda" and cfg.learner.packing and cfg.model.dtype in ("bfloat16", "float16")
                and importlib.util.find_spec("flash_attn")):
            # the variable-length kernel that makes packed rows faster than padded ones on GPU (16-bit only)
            return {**load, "attn_implementation": "flash_attention_2"}
        return load

    def _batching(self, model: torch.nn.Module) -> None:
        """Packed or padded micro-batches for this model on this device (`rlvr.learner.packing`)."""
        impl = getattr(model.config, "_attn_implementation", None)
        self.packing, self.batching = packing_choice(self.cfg.learner.packing, self.device.type, impl)
        self._one_row = impl in VARLEN_KERNELS  # a variable-length kernel packs a micro-batch into one row

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
        self._batching(model)
        self.chunk_tokens = cfg.learner.logprob_chunk_tokens if _chunkable(model) else 0
        self.lora = cfg.model.lora
        if self.lora is not None:
            from rlvr.learner import lora

            model = lora.wrap(model, self.lora)
            if cfg.learner.gradient_checkpointing:  # the frozen embeddings' output must carry a gradient
                model.enable_input_require_grads()
        self.hf_model = model.get_base_model() if self.lora is not None else model  # the causal LM, unwrapped
        head = self.hf_model.get_output_embeddings()
        if self.chunk_tokens and cfg.learner.zero_stage == 3 and head is not None and not any(
                p.requires_grad for p in head.parameters()):
            # ZeRO-3 does not gather a frozen output layer again when the backward pass recomputes a chunk
            # (measured: torch's checkpoint then sees a partitioned weight), so the logits are computed whole.
            self.chunk_tokens = 0
        self._initialize(model, train_config(cfg, self.world_size), warmup_scheduler(cfg))
        self.algorithm = get_algorithm(cfg.algorithm, max_new_tokens=cfg.rollout.max_new_tokens)
        if self.algorithm.needs_reference and self.lora is None:  # LoRA: the reference is the adapter switched off
            ref_model = AutoModelForCausalLM.from_pretrained(cfg.model.source, dtype=self.master_dtype, **load)
            ref_model.requires_grad_(False)
            self.ref, *_ = deepspeed.initialize(model=ref_model, config=inference_config(cfg, self.world_size))
            self.ref.eval()
        self._check_packing(lambda mb: self._forward(self.engine, mb)[0])
        params = sum(numel(p) for p in model.parameters())
        trained = sum(numel(p) for _, p in trainable(model))
        return {"params": params, "trainable_params": trained, "tied_embeddings": self.tied,
                "batching": self.batching, "logprob_chunk_tokens": self.chunk_tokens, **self.ready()}

    def optimizer_state_bytes(self) -> int:
        """Bytes of optimizer state this rank holds now: the moments (created by the first step) and ZeRO's
        fp32 master partitions. With LoRA only the adapter's parameters reach the optimizer, and this shows it."""
        seen: set[int] = set()

        def size(tensors: Any) -> int:
            fresh = [t for t in tensors if torch.is_tensor(t) and id(t) not in seen]
            seen.update(id(t) for t in fresh)
            return sum(t.numel() * t.element_size() for t in fresh)

        inner = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        total = sum(size(state.values()) for state in inner.state.values())
        return total + size(getattr(self.engine.optimizer, "single_partition_of_fp32_groups", None) or [])

    @torch.no_grad()
    def _check_packing(self, score: Any) -> None:
        """Packing relies on the model building its attention from restarting position ids (transformers'
        packed-sequence masks). A model whose attention ignores them would let packed sequences attend to each
        other, silently: so score two sequences in one packed row and on padded rows once, and refuse to start
        when they differ. Every rank runs it (ZeRO-3's forward is collective)."""
        if not self.packing:
            return
        self.engine.eval()  # no dropout: the two layouts must be comparable
        gen = torch.Generator().manual_seed(0)
        vocab = int(self.engine.module.config.vocab_size)
        seqs = [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in (6, 9)]
        rows = TrainRows(input_ids=seqs, prompt_lens=[1, 1])
        mb = collate(rows, self.pad_id, self.device)
        padded = score(mb)
        mb.packed = pack(seqs, self.pad_id, self.device, row_tokens=None)  # both in one row
        gap = float(((score(mb) - padded) * mb.mask).abs().max())
        tol = 1e-3 if self.cfg.model.dtype in ("float32", "float64") else 5e-2
        if not gap <= tol:
            raise RuntimeError(
                f"learner.packing: {type(self.engine.module).__name__} does not keep packed sequences apart (scores "
                f"of two sequences in one packed row differ from padded rows by {gap:.3g}): its attention ignores "
                "restarting position ids. Set learner.packing=false")

    # ---- micro-batching -------------------------------------------------------------------

    def _chunks(self, rows: TrainRows) -> list[list[int]]:
        """Token-budget micro-batches (packed: `rlvr.learner.packing.packed_micro_batches`; padded: rows of
        similar length together), padded with empty ones so every rank runs the same number of
        forward/backward passes (ZeRO's collectives happen inside them)."""
        lengths, budget = [len(x) for x in rows.input_ids], self.cfg.learner.micro_batch_tokens
        if self.packing:
            chunks, self._row_tokens = packed_micro_batches(lengths, budget, one_row=self._one_row)
        else:
            chunks = padded_bins(lengths, budget)
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
        if self.packing:
            mb.packed = pack(sub.input_ids, self.pad_id, self.device, self._row_tokens)
        if empty:  # a stand-in pass that contributes nothing
            mb.mask.zero_()
        return sub, mb, empty

    def _forward(
        self, module: Any, mb: MicroBatch, entropy: bool = False, entropy_grad: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs of the targets at the sampling temperature ``[B, T]`` and, when asked, the
        token entropy ``[B, T]`` (with gradient only for an entropy bonus). Packed micro-batches run as packed
        rows and come back in the padded layout; with ``learner.logprob_chunk_tokens`` the output layer runs
        a chunk of tokens at a time (`rlvr.learner.logprobs`)."""
        p = mb.packed
        if p is not None:
            inputs = {"input_ids": p.input_ids, "position_ids": p.position_ids}
            targets = p.input_ids[:, 1:]  # [R, W - 1]: position j of a packed row scores its token j + 1
        else:
            inputs = {"input_ids": mb.input_ids, "attention_mask": mb.attention_mask}
            targets = mb.targets  # [B, T]
        if self.chunk_tokens:
            hidden = self._hidden_states(module, inputs)[:, :-1]  # [b, t, H]
            lp, ent = self._chunked(_causal_lm(module).get_output_embeddings(), hidden.reshape(-1, hidden.shape[-1]),
                                    targets.reshape(-1), entropy, entropy_grad)
            lp, ent = lp.view(targets.shape), (None if ent is None else ent.view(targets.shape))
        else:
            logits = module(**inputs, use_cache=False).logits[:, :-1] / self.temperature  # [b, t, V]
            lp, ent = token_logprobs(logits, targets), None
            if entropy:
                if entropy_grad:
                    ent = token_entropy(logits)
                else:
                    with torch.no_grad():
                        ent = token_entropy(logits.detach())
        if p is not None:
            lp, ent = p.unpack(lp), (None if ent is None else p.unpack(ent))
        return lp, ent

    def _chunked(
        self, head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, entropy: bool, entropy_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`chunked_logprobs` over ``hidden [M, H]``. Under ZeRO-3 with several ranks every call of the output
        layer gathers its weight (a collective, again when the backward pass recomputes a chunk), so every
        rank runs the same number of chunks: the rows are padded to the longest rank's count, and the padding
        chunks stay in the graph with weight 0 so their backward runs too."""
        m = hidden.shape[0]
        n = m
        if self.cfg.learner.zero_stage == 3 and self.world_size > 1:
            import torch.distributed as dist

            most = torch.tensor([m], device=self.device)
            dist.all_reduce(most, op=dist.ReduceOp.MAX)
            n = int(most.item())
        if n > m:
            hidden = torch.cat([hidden, hidden.new_zeros(n - m, hidden.shape[1])])
            targets = torch.cat([targets, targets.new_zeros(n - m)])
        lp, ent = chunked_logprobs(head, hidden, targets, self.temperature, self.chunk_tokens, entropy, entropy_grad)
        if n > m:
            tie = 0.0 * lp[m:].sum()  # keeps the padding chunks' backward (and its collectives) on this rank
            lp = lp[:m] + tie
            ent = None if ent is None else ent[:m]
        return lp, ent

    @staticmethod
    def _hidden_states(module: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The decoder's final hidden states ``[b, t, H]`` from the engine's own forward pass (so DeepSpeed's
        hooks run as usual), with the output layer applied to no position (``logits_to_keep`` = none)."""
        captured: list[torch.Tensor] = []

        def keep(_: Any, __: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

        handle = _causal_lm(module).base_model.register_forward_hook(keep)
        try:
            none = torch.zeros(0, dtype=torch.long, device=inputs["input_ids"].device)
            module(**inputs, use_cache=False, logits_to_keep=none)
        finally:
            handle.remove()
        return captured[-1]

    # ---- remote API ----------------------------------------------------------------------

    @releases_cuda_cache
    @torch.no_grad()
    def compute_logprobs(self, rows: TrainRows, which: str = "policy") -> list[list[float]]:
        """Per-response-token log-probs under the current policy or the frozen reference (with LoRA: the same
        module with its adapter switched off, so the reference costs no second copy of the weights)."""
        reference = which != "policy"
        module = self.engine if not reference or self.lora is not None else self.ref
        if module is None:
            raise RuntimeError("no reference model: the algorithm does not need one (algorithm.kl_coef = 0)")
        module.eval()
        out: list[list[float]] = [[] for _ in range(len(rows))]
        with self.engine.module.disable_adapter() if reference and self.lora is not None else nullcontext():
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
                token_values=mb.token_values,
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

    def _named_params(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The parameters the optimizer trains (every one, or with LoRA the adapter's), by module name."""
        return trainable(self.engine.module)

    def _sync_sources(self) -> list[Any]:
        """What the engines take by full-weight sync, as `rlvr.learner.lora.MergedSource` (name, parameter and,
        for a LoRA-adapted weight, the layer whose delta is merged in)."""
        from rlvr.learner.lora import MergedSource, merged_sources

        if self.lora is not None:
            return merged_sources(self.engine.module, sync_params)
        return [MergedSource(n, p) for n, p in sync_params(self.engine.module)]

    def weight_manifest(self) -> list[tuple[str, int]]:
        """(name, bytes) of everything the engines receive, in order; plans the sync buckets. Full weights:
        Hugging Face names (`sync_params`: a tied output layer under its own name; with LoRA merged, the
        base model's names). LoRA adapter sync: the adapter's tensors, by peft name."""
        if self.lora is not None and self.lora.sync_mode == "adapter":
            return [(n, numel(p) * p.element_size()) for n, p in self._named_params()]
        return [(s.name, numel(s.param) * s.param.element_size()) for s in self._sync_sources()]

    @releases_cuda_cache
    def export_weights(self, names: list[str], dtype: str | None = None) -> dict[str, torch.Tensor]:
        """Full (gathered) CPU copies of the named weights (`weight_manifest` full-weight names; with LoRA the
        adapter merged in). Under ZeRO-3 every rank must call this (the gather is collective); only rank 0
        returns tensors."""
        import deepspeed

        wanted = set(names)
        sources = [s for s in self._sync_sources() if s.name in wanted]
        cast = getattr(torch, dtype) if dtype else None
        unique = list({id(p): p for s in sources for p in s.gather()}.values())  # a tied alias is gathered once
        with deepspeed.zero.GatheredParameters(unique, enabled=self.cfg.learner.zero_stage == 3), torch.no_grad():
            if self.rank != 0:
                return {}
            return {s.name: s.value().to("cpu", dtype=cast or s.param.dtype).clone() for s in sources}

    @releases_cuda_cache
    def export_adapter(self, dtype: str | None = None) -> dict[str, Any]:
        """The LoRA adapter as vLLM and peft load it: ``{"tensors": peft-format name -> CPU tensor, "config":
        adapter_config.json contents}``. Under ZeRO-3 every rank must call this; only rank 0 returns it."""
        import deepspeed

        from rlvr.learner import lora

        named = self._named_params()
        cast = getattr(torch, dtype) if dtype else None
        with deepspeed.zero.GatheredParameters([p for _, p in named], enabled=self.cfg.learner.zero_stage == 3):
            if self.rank != 0:
                return {}
            full = {n: p.detach().to("cpu", dtype=cast or p.dtype).clone() for n, p in named}
        module = self.engine.module
        return {"tensors": lora.adapter_state(module, full),
                "config": lora.adapter_config(module, self.cfg.model.source)}

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
        # LoRA: the frozen base weights come from model.source again on resume, so only the adapter is written
        self.engine.save_checkpoint(path, tag="state", client_state={"rlvr_rank": self.rank},
                                    exclude_frozen_parameters=self.lora is not None)
        torch.save(_rng_state(), Path(path) / f"rng_rank{self.rank}.pt")

    def load_state(self, path: str) -> None:
        """Every rank: restore what `save_state` wrote (needs the same number of ranks and ZeRO stage)."""
        rng = Path(path) / f"rng_rank{self.rank}.pt"
        if not rng.is_file():
            raise FileNotFoundError(f"{rng} is missing: the checkpoint was written by fewer learner ranks "
                                    f"than the {self.world_size} of this run (learner.num_ranks must not change)")
        loaded, _ = self.engine.load_checkpoint(path, tag="state", load_optimizer_states=True,
                                                load_lr_scheduler_states=True, load_module_strict=self.lora is None)
        if loaded is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {path}/state")
        _set_rng_state(torch.load(rng, weights_only=False))

    def save_hf(self, path: str) -> str:
        """Write a Hugging Face checkpoint (safetensors + tokenizer) atomically: to a temporary folder first,
        renamed into place when complete. With LoRA: the adapter in peft's format (``adapter_config.json`` +
        ``adapter_model.safetensors``, loadable by ``PeftModel.from_pretrained`` and vLLM), and with
        ``checkpoint.merge_lora`` the merged model in ``merged/``."""
        dtype = self.cfg.model.dtype
        merge = self.lora is None or self.cfg.checkpoint.merge_lora
        sources, seen = [], set()
        for src in self._sync_sources():  # a tied output layer is saved once, as from_pretrained expects
            if id(src.param) not in seen:
                seen.add(id(src.param))
                sources.append(src.name)
        merged = self.export_weights(sources, dtype=dtype) if merge else {}
        adapter = self.export_adapter(dtype=dtype) if self.lora is not None else {}
        if self.rank != 0:
            return path
        final = Path(path)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if self.lora is None:
            self._save_model(tmp, merged)
        else:
            from safetensors.torch import save_file

            tmp.mkdir(parents=True)
            save_file({k: v.contiguous() for k, v in adapter["tensors"].items()}, tmp / "adapter_model.safetensors")
            (tmp / "adapter_config.json").write_text(json.dumps(adapter["config"], indent=2) + "\n")
            self.tokenizer.save_pretrained(tmp)
            if merge:
                self._save_model(tmp / "merged", merged)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return str(final)

    def _save_model(self, path: Path, state: dict[str, torch.Tensor]) -> None:
        """A plain Hugging Face model directory of ``state`` (full names), with tokenizer and generation config."""
        model = self.hf_model
        model.config.dtype = self.cfg.model.dtype
        model.save_pretrained(path, state_dict=state, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(path)


def _causal_lm(engine: Any) -> torch.nn.Module:
    """The Hugging Face causal LM inside a DeepSpeed engine (the policy's or the reference's), unwrapped from
    peft when the policy carries a LoRA adapter."""
    module = engine.module
    return module.get_base_model() if hasattr(module, "get_base_model") else module


def _chunkable(model: torch.nn.Module) -> bool:
    """Can the output layer run apart from the model (chunked log-probs)? A causal LM whose logits are the
    output layer of the decoder's last hidden states, nothing after it (no soft-capping or logit scale)."""
    import inspect

    cfg = model.config
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0):
        return False
    if "logits_to_keep" not in inspect.signature(model.forward).parameters:
        return False  # no way to run the model without its output layer over every position
    return model.get_output_embeddings() is not None and model.base_model is not model
