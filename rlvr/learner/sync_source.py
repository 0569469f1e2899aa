"""The learner's weights as the engines take them: Hugging Face names (a tied output layer included),
the engines' dtype, full shapes, gathered bucket by bucket.

Why one stream: under ZeRO-3 each bucket's gather is a collective over the learner ranks. vLLM's NCCL
sender consumes the weights inside its packed producer, which runs on a side CUDA stream of its own on
rank 0, while every other rank iterates on its default stream; collectives issued from different
streams on different ranks are the structure that deadlocked another framework's weight sync with 4
ranks (NCCL watchdog abort after 30 minutes). So every rank gathers and copies on its default stream,
waits for the copies there, and only then hands them to whichever stream consumes them (recorded on that
stream, so the allocator does not reuse their memory while the consumer still reads it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch


def sync_params(module: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of everything an engine must receive, in the module's order. A model with tied
    input and output embeddings lists the shared tensor a second time under the output layer's own name
    (``lm_head.weight``): ``named_parameters`` names it once, and vLLM keeps a separate output layer after
    an in-place update, which would otherwise stay stale (ENVIRONMENT.md, "Tied embeddings")."""
    named = list(module.named_parameters())
    get_in, get_out = getattr(module, "get_input_embeddings", None), getattr(module, "get_output_embeddings", None)
    inp = get_in() if callable(get_in) else None
    out = get_out() if callable(get_out) else None
    weight = getattr(out, "weight", None)
    if inp is not None and weight is not None and weight is getattr(inp, "weight", None):
        prefix = next(name for name, m in module.named_modules() if m is out)
        alias = f"{prefix}.weight"
        if alias not in dict(named):
            named.append((alias, weight))
    return named


class CudaStreams:
    """The stream operations `gathered_buckets` needs, on one CUDA device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def current(self) -> Any:
        return torch.cuda.current_stream(self.device)

    def gather_stream(self) -> Any:
        return torch.cuda.default_stream(self.device)  # the same stream on every rank

    def use(self, stream: Any) -> ContextManager[Any]:
        return torch.cuda.stream(stream)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def hand_over(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)


class NoStreams:
    """CPU: no streams, nothing to order."""

    def current(self) -> Any:
        return None

    def gather_stream(self) -> Any:
        return None

    def use(self, stream: Any) -> ContextManager[Any]:
        return contextlib.nullcontext()

    def synchronize(self, stream: Any) -> None:
        pass

    def hand_over(self, tensor: torch.Tensor, stream: Any) -> None:
        pass


def streams_for(device: torch.device) -> CudaStreams | NoStreams:
    return CudaStreams(device) if device.type == "cuda" else NoStreams()


def gathered_buckets(
    params: Mapping[str, torch.Tensor], buckets: list[list[str]], dtype: torch.dtype, device: torch.device,
    gather: Callable[[list[torch.Tensor]], ContextManager[Any]], streams: CudaStreams | NoStreams,
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor at dtype)`` bucket by bucket. Each bucket is gathered once (``gather``: ZeRO-3's
    ``GatheredParameters``, a collective every rank runs in the same order) and copied out on the gather
    stream; the copies have landed before the gathered storage is released and before they are handed to
    the caller's stream."""
    for bucket in buckets:
        group = list({id(params[n]): params[n] for n in bucket}.values())  # a tied alias gathers once
        consumer = streams.current()
        stream = streams.gather_stream()
        with streams.use(stream), gather(group):
            copies = [params[n].detach().to(device=device, dtype=dtype, copy=True) for n in bucket]
            streams.synchronize(stream)
        for copy in copies:
            streams.hand_over(copy, consumer)
        yield from zip(bucket, copies)


def zero3_gather(enabled: bool) -> Callable[[list[torch.Tensor]], ContextManager[Any]]:
    def gather(group: list[torch.Tensor]) -> ContextManager[Any]:
        import deepspeed

        return deepspeed.zero.GatheredParameters(group, enabled=enabled)

    return gather


def bucket_source(
    named: list[tuple[str, torch.nn.Parameter]], buckets: list[list[str]], dtype: torch.dtype, zero3: bool,
    device: torch.device,
) -> Any:
    """The parameters as a vLLM ``WeightSource`` (re-iterable: each ``iter`` is a fresh pass, as vLLM's
    trainer engines require) over `gathered_buckets`."""
    from vllm.distributed.weight_transfer import ParamMeta, WeightSource

    params = dict(named)
    order = [name for bucket in buckets for name in bucket]

    class BucketSource(WeightSource):
        def metadata(self) -> list[ParamMeta]:
            return [ParamMeta(n, dtype, tuple(getattr(params[n], "ds_shape", params[n].shape))) for n in order]

        def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
            return gathered_buckets(params, buckets, dtype, device, zero3_gather(zero3), streams_for(device))

    return BucketSource()
