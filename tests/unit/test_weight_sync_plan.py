"""Weight sync planning on CPU: buckets, path choice and its validation, placement checks, the
learner's vLLM weight source, and the sleep/wake sequence (remote calls recorded, no engines)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from rlvr.config import RecipeError, load_recipe
from rlvr.placement import ResourceError
from rlvr.rollout.worker import TransferChoice, choose_transfer, transfer_settings
from rlvr.weight_sync import WeightSync, check_placement, plan_buckets
from tests.conftest import DEFAULT_RECIPE


def _layer(i: int, nbytes: int) -> list[tuple[str, int]]:
    return [(f"model.layers.{i}.self_attn.{p}_proj.weight", nbytes) for p in "qkv"]


def test_buckets_never_split_a_layer() -> None:
    manifest = [("model.embed_tokens.weight", 40), *_layer(0, 10), *_layer(1, 10), ("model.norm.weight", 5),
                ("lm_head.weight", 40)]
    buckets = plan_buckets(manifest, 50)
    assert [n for b in buckets for n in b] == [n for n, _ in manifest]  # every name once, in order
    for i in (0, 1):  # q, k and v of a layer always travel together (vLLM fuses them into qkv_proj)
        assert sum(any(f"layers.{i}." in n for n in b) for b in buckets) == 1
    assert buckets == [["model.embed_tokens.weight"], [n for n, _ in _layer(0, 10)],
                       [n for n, _ in _layer(1, 10)] + ["model.norm.weight"], ["lm_head.weight"]]


def test_a_layer_larger_than_a_bucket_gets_its_own() -> None:
    manifest = [("a", 10), *_layer(0, 100), ("b", 10)]
    assert plan_buckets(manifest, 50) == [["a"], [n for n, _ in _layer(0, 100)], ["b"]]


def test_auto_path_by_hardware_and_placement() -> None:
    assert choose_transfer("auto", "auto", colocated=True, has_cuda=False) == TransferChoice("reload", False)
    assert choose_transfer("auto", "auto", colocated=False, has_cuda=False) == TransferChoice("reload", False)
    assert choose_transfer("reload", "off", colocated=True, has_cuda=False) == TransferChoice("reload", False)
    assert choose_transfer("auto", "auto", colocated=True, has_cuda=True) == TransferChoice("ipc", True)
    assert choose_transfer("auto", "auto", colocated=False, has_cuda=True) == TransferChoice("nccl", False)
    assert choose_transfer("reload", "auto", colocated=True, has_cuda=True) == TransferChoice("reload", True)
    assert choose_transfer("nccl", "on", colocated=False, has_cuda=True) == TransferChoice("nccl", True)
    assert choose_transfer("ipc", "off", colocated=True, has_cuda=True) == TransferChoice("ipc", False)


@pytest.mark.parametrize(("transfer", "sleep", "named"), [
    ("nccl", "auto", "rollout.weight_transfer=nccl"),
    ("ipc", "off", "rollout.weight_transfer=ipc"),
    ("auto", "on", "rollout.sleep=on"),
])
def test_gpu_settings_without_cuda_fail_naming_the_setting(transfer: str, sleep: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        choose_transfer(transfer, sleep, colocated=True, has_cuda=False)


def test_recipe_fields_and_their_validation() -> None:
    cfg = load_recipe(DEFAULT_RECIPE)
    assert (cfg.rollout.weight_transfer, cfg.rollout.sleep) == ("auto", "auto")
    cfg = load_recipe(DEFAULT_RECIPE, ["rollout.weight_transfer=nccl", "rollout.sleep=off"])
    assert (cfg.rollout.weight_transfer, cfg.rollout.sleep) == ("nccl", "off")
    with pytest.raises(RecipeError, match="weight_transfer"):
        load_recipe(DEFAULT_RECIPE, ["rollout.weight_transfer=disk"])
    with pytest.raises(RecipeError, match="sleep"):
        load_recipe(DEFAULT_RECIPE, ["rollout.sleep=maybe"])


def test_transfer_settings_follow_the_recipe() -> None:
    assert transfer_settings(load_recipe(DEFAULT_RECIPE)) == {"weight_transfer": "auto", "sleep": "auto",
                                                              "colocated": True, "pin_cpus": False, "lora_rank": None}
    split = load_recipe(DEFAULT_RECIPE, ["resources.colocate=false", "rollout.weight_transfer=nccl",
                                         "rollout.sleep=off", "rollout.max_staleness=1"])
    # asynchronous: engines on their own cores (CPU runs)
    assert transfer_settings(split) == {"weight_transfer": "nccl", "sleep": "off", "colocated": False,
                                        "pin_cpus": True, "lora_rank": None}


def test_placement_checks() -> None:
    check_placement("nccl", ["gpu0"], [["gpu1"], ["gpu2"]])  # split: fine
    with pytest.raises(ResourceError, match="NCCL cannot put two ranks"):
        check_placement("nccl", ["gpu0", "gpu1"], [["gpu1"], ["gpu0"]])
    check_placement("ipc", ["gpu0", "gpu1"], [["gpu0"], ["gpu1"]])  # colocated: fine
    with pytest.raises(ResourceError, match="holds no learner rank"):
        check_placement("ipc", ["gpu0"], [["gpu0", "gpu1"]])
    with pytest.raises(ResourceError, match="must run on GPUs"):
        check_placement("ipc", [None], [["gpu0"]])
    check_placement("reload", [None], [[]])


def test_engine_client_shifts_nccl_ranks_per_engine() -> None:
    from rlvr.learner.worker import EngineClient

    client = EngineClient(engines=["e0", "e1", "e2"], engine_ranks=[1, 2, 1], timeout_s=1.0)
    infos = client.init_infos({"master_port": 5, "rank_offset": 1, "world_size": 5})
    assert [i["rank_offset"] for i in infos] == [1, 2, 4]  # sender is rank 0; engines 1, 2-3, 4
    assert all(i["world_size"] == 5 and i["master_port"] == 5 for i in infos)
    assert client.init_infos({"packed": True}) == [{"packed": True}] * 3  # IPC: nothing to shift


def test_bucket_source_agrees_with_its_metadata() -> None:
    """What vLLM's trainer engines rely on: iteration yields exactly metadata(), in order, at the
    declared dtype and shape (NCCL sizes its receive buffers from it), as fresh copies."""
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerWeightTransferEngine

    from rlvr.learner.sync_source import bucket_source

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    named = list(model.named_parameters())
    buckets = plan_buckets([(n, p.numel() * 4) for n, p in named], bucket_bytes=64)
    assert len(buckets) > 1
    source = bucket_source(named, buckets, torch.bfloat16, zero3=False, device=torch.device("cpu"))
    meta = source.metadata()
    assert [m.name for m in meta] == [n for n, _ in named]
    assert all(m.dtype == torch.bfloat16 and m.shape == tuple(p.shape) for m, (_, p) in zip(meta, named))
    for _ in range(2):  # a fresh pass each round
        sent = list(NCCLTrainerWeightTransferEngine._checked_iter(source, meta))  # raises on any disagreement
        for (name, tensor), (expected, param) in zip(sent, named):
            assert name == expected and tensor.data_ptr() != param.data_ptr()
            torch.testing.assert_close(tensor, param.detach().to(torch.bfloat16))


class _Call:
    """A remote method that runs at once and records itself (``wait`` is patched to pass values)."""

    def __init__(self, log: list[tuple], who: str, name: str, result: Any) -> None:
        self.log, self.who, self.name, self.result = log, who, name, result

    def remote(self, *args: Any) -> Any:
        self.log.append((self.who, self.name, *args))
        return self.result(*args) if callable(self.result) else self.result


def _worker(log: list[tuple], who: str, **results: Any) -> SimpleNamespace:
    return SimpleNamespace(**{name: _Call(log, who, name, r) for name, r in results.items()})


def _sync(monkeypatch: pytest.MonkeyPatch, path: str, sleep: bool, unwritten: list[list[str]] | None = None,
          preserved: list[str] | None = None, notes: list[str] | None = None) -> tuple[WeightSync, list[tuple]]:
    """``unwritten``: what the engine reports after each transfer, in turn (the last one repeats)."""
    import rlvr.weight_sync as ws

    reports = list(unwritten or [[]])

    def unloaded() -> list[dict[str, Any]]:
        names = reports.pop(0) if len(reports) > 1 else reports[0]
        return [{"names": names, "preserved": preserved or []}]

    monkeypatch.setattr(ws, "wait", lambda refs, timeout_s, what: refs)
    log: list[tuple] = []
    engine = _worker(log, "engine",
                     transfer_info={"path": path, "sleep": sleep, "ranks": 1,
                                    "gpus": ["gpu0" if path == "ipc" else "gpu1"]},
                     sleep={"seconds": 0.0, "freed_bytes": 5e9},
                     wake_up=lambda tags: {"seconds": 0.0, "awake": float(tags == ["kv_cache"])})
    learner = _worker(log, "learner", gpu_uuid="gpu0", init_weight_transfer=None,
                      send_weights={"bytes": 123.0, "seconds": 0.0})
    cfg = SimpleNamespace(model=SimpleNamespace(dtype="bfloat16", lora=None))
    learners = SimpleNamespace(cfg=cfg, workers=[learner], timeout_s=1.0, weight_manifest=lambda: [("w", 8)])
    rollouts = SimpleNamespace(workers=[engine], timeout_s=1.0, unloaded=unloaded)
    sync = WeightSync(learners, rollouts, log=notes.append if notes is not None else None)  # type: ignore[arg-type]
    if sleep:  # the set-up transfer that finds what a transfer leaves alone, before any sleep
        assert _steps(log)[-1] == "learner.send_weights", _steps(log)
    log.clear()
    return sync, log


def _steps(log: list[tuple]) -> list[str]:
    return [f"{who}.{name}{'' if name != 'wake_up' else args[0]}" for who, name, *args in log]


def test_sleep_sequence_around_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    sync, log = _sync(monkeypatch, "ipc", sleep=True)
    assert sync.describe().startswith("ipc (vLLM CUDA IPC")
    sync.before_rollout()  # awake since start-up: nothing to do
    sync.after_rollout()
    sync.after_rollout()  # already asleep: once is enough
    stats = sync(version=1)
    assert _steps(log) == ["engine.sleep", "engine.wake_up['weights']", "learner.send_weights",
                           "engine.wake_up['kv_cache']"]
    assert stats["sync/bytes"] == 123.0 and stats["sync/freed_bytes"] == 5e9
    assert {"time/sleep_s", "time/wake_s", "time/sync_s"} <= stats.keys()
    log.clear()
    sync.before_rollout()  # the sync woke them
    assert log == [] and "time/sleep_s" not in sync(version=2)


def test_engines_asleep_without_a_sync_get_their_weights_back(monkeypatch: pytest.MonkeyPatch) -> None:
    sync, log = _sync(monkeypatch, "nccl", sleep=True)
    sync.after_rollout()
    sync.before_rollout()  # level 2 dropped the weights: the learners' (unchanged) ones go back in
    assert _steps(log) == ["engine.sleep", "engine.wake_up['weights']", "learner.send_weights",
                           "engine.wake_up['kv_cache']"]
    assert log[2][2] == 0  # the version the engines had


def test_without_sleep_the_hooks_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    sync, log = _sync(monkeypatch, "nccl", sleep=False)
    sync.before_rollout()
    sync.after_rollout()
    stats = sync(version=3)
    assert _steps(log) == ["learner.send_weights"]
    assert set(stats) == {"sync/bytes", "sync/buckets", "time/sync_s"}


BIAS = "model.layers.0.mlp.gate.e_score_correction_bias"


def test_a_parameter_the_sync_does_not_write_keeps_engines_at_sleep_level_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """An MoE router bias is a buffer in the Hugging Face model, so the learners never send it; level 2 would
    bring it back as garbage. The set-up transfer finds it before the first sleep."""
    notes: list[str] = []
    sync, log = _sync(monkeypatch, "ipc", sleep=True, unwritten=[[BIAS]], notes=notes)
    assert sync.sleep_level == 1 and "level 1" in sync.describe()
    assert len(notes) == 1 and BIAS in notes[0] and "level 1" in notes[0], notes
    sync.after_rollout()
    assert log[0][:3] == ("engine", "sleep", 1)
    sync(version=1)  # the same parameter again: nothing new to say, no error
    assert len(notes) == 1


def test_preserved_parameters_keep_level_2(monkeypatch: pytest.MonkeyPatch) -> None:
    sync, log = _sync(monkeypatch, "ipc", sleep=True, unwritten=[[BIAS]], preserved=["*.e_score_correction_bias"])
    assert sync.sleep_level == 2
    sync.after_rollout()
    assert log[0][:3] == ("engine", "sleep", 2)


def test_a_parameter_lost_under_level_2_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr.weight_sync import WeightSyncError

    sync, _ = _sync(monkeypatch, "nccl", sleep=True, unwritten=[[], [BIAS]])
    assert sync.sleep_level == 2
    sync.after_rollout()
    with pytest.raises(WeightSyncError, match=r"did not write 1 engine parameter\(s\) \(model\.layers\.0.*level 2"):
        sync(version=1)


def test_without_sleep_an_unwritten_parameter_is_noted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    notes: list[str] = []
    sync, log = _sync(monkeypatch, "nccl", sleep=False, unwritten=[[BIAS]], notes=notes)
    assert log == [] and notes == []  # no set-up transfer without sleep
    sync(version=1)
    sync(version=2)
    assert len(notes) == 1 and "keep the values the engines loaded" in notes[0] and "level" not in notes[0]


@pytest.mark.parametrize(("unwritten", "preserved", "level"), [
    ([], [], 2), ([BIAS], [], 1), ([BIAS], ["*.gate.*"], 2), ([BIAS, "lm_head.weight"], ["*.gate.*"], 1),
])
def test_sleep_level_rule(unwritten: list[str], preserved: list[str], level: int) -> None:
    from rlvr.weight_sync import sleep_level

    assert sleep_level(unwritten, preserved) == level
