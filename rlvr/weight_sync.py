"""Weight sync from the learner group into every rollout engine: in place, bucketed, timed.

Each engine picks its path at start-up from ``rollout.weight_transfer`` and its own hardware
(`rlvr.rollout.worker.choose_transfer`); the sync asks the engines and follows them.

* ``reload`` (CPU, and anywhere as the portable path): each bucket is gathered by the learners
  (ZeRO-3 shards once per bucket), put in Ray's shared-memory object store once, and loaded by every
  engine through vLLM's ``reload_weights`` — no checkpoint written to disk.
* ``nccl`` / ``ipc`` (GPU): vLLM's weight-transfer API. Every learner rank runs vLLM's trainer-side
  engine over the same buckets (each gathered once under ZeRO-3); rank 0 broadcasts over NCCL to
  engines on other GPUs, or hands CUDA IPC handles to the engines on the learners' GPUs. One update
  session (start, chunks, finish) per sync, so vLLM's layer-wise reload sees every layer whole.

Sleep (GPU, ``rollout.sleep``): the trainer calls `before_rollout` / `after_rollout` around
generation. After a rollout the engines sleep at level 2 (weights and KV cache released) while the
learners train; the sync wakes the weights, transfers, then wakes the KV cache, so the transfer never
competes with a KV cache for memory. Without sleep both hooks return at once.

Every transfer is checked: the engines report the parameters it did not write
(`rlvr.rollout.load_check`). Those keep their loaded values while an engine is awake, but level 2
discards them. So with sleep on, a first transfer at set-up (before any sleep) finds them, and a model
that has any sleeps at level 1 (weights kept in CPU memory) unless vLLM preserves them
(``rollout.vllm.sleep_preserve_parameter_names``); one found later under level 2 stops the run. And every
sync is verified end to end by the probe (`rlvr.sync_probe`): the engines' log-probs of a few fixed
sequences must equal the learner's.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rlvr.learner.group import LearnerGroup
from rlvr.placement import ResourceError
from rlvr.remote import wait
from rlvr.rollout.group import RolloutGroup
from rlvr.rollout.worker import SLEEP_LEVEL

if TYPE_CHECKING:
    from rlvr.sync_probe import SyncProbe


def _layer_of(name: str) -> str | None:
    """The outermost numbered block of a parameter name (``model.layers.3`` for
    ``model.layers.3.mlp.up_proj.weight``), or None for a name outside any (embeddings, final norm)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def plan_buckets(manifest: list[tuple[str, int]], bucket_bytes: int) -> list[list[str]]:
    """Group parameter names, in order, into buckets of at most ``bucket_bytes``, never splitting a
    numbered block (a decoder layer). A unit larger than the limit gets a bucket of its own.

    Why whole layers: each ``reload_weights`` call is one vLLM layer-wise reload, which fuses a
    layer's tensors (q/k/v into one qkv_proj); a layer loaded only in part is rebuilt from fresh,
    uninitialised memory for the parts it did not get."""
    units: list[tuple[list[str], int]] = []
    for name, nbytes in manifest:
        layer = _layer_of(name)
        if units and layer is not None and _layer_of(units[-1][0][-1]) == layer:
            units[-1] = (units[-1][0] + [name], units[-1][1] + nbytes)
        else:
            units.append(([name], nbytes))
    buckets: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for names, nbytes in units:
        if cur and size + nbytes > bucket_bytes:
            buckets.append(cur)
            cur, size = [], 0
        cur.extend(names)
        size += nbytes
    if cur:
        buckets.append(cur)
    return buckets


def check_placement(path: str, learner_gpus: list[str | None], engine_gpus: list[list[str]]) -> None:
    """Fail before the first transfer when the engines sit where ``path`` cannot reach them.

    nccl: one NCCL group cannot hold two ranks on one device, so no engine may share learner rank
    0's GPU. ipc: CUDA IPC works within a device, so every engine worker needs a learner rank on
    its GPU (vLLM's IPC engine looks its handle up by GPU)."""
    if path in ("nccl", "ipc") and None in learner_gpus:
        raise ResourceError(f"rollout.weight_transfer={path}: the learner ranks must run on GPUs, and at least one "
                         "has none; use rollout.weight_transfer=reload")
    if path == "nccl":
        for i, gpus in enumerate(engine_gpus):
            if learner_gpus[0] in gpus:
                raise ResourceError(
                    f"rollout.weight_transfer=nccl: rollout engine {i} shares GPU {learner_gpus[0]} with learner "
                    "rank 0, and NCCL cannot put two ranks of one group on one device; give the engines their "
                    "own GPUs (resources.colocate=false) or use rollout.weight_transfer=ipc"
                )
    elif path == "ipc":
        held = set(learner_gpus)
        for i, gpus in enumerate(engine_gpus):
            missing = [g for g in gpus if g not in held]
            if missing:
                raise ResourceError(
                    f"rollout.weight_transfer=ipc: rollout engine {i} runs on GPU {missing[0]}, which holds no "
                    "learner rank, and CUDA IPC only reaches processes on the same device; colocate the engines "
                    "with learner ranks (resources.colocate=true, learner.num_ranks >= the engines' GPUs) or use "
                    "rollout.weight_transfer=nccl (engines on their own GPUs) or reload"
                )


class WeightSyncError(RuntimeError):
    """A transfer left engine parameters that level-2 sleep has discarded: the engines would sample garbage."""


def sleep_level(unwritten: list[str], preserved: list[str]) -> int:
    """The vLLM sleep level for engines whose sync does not write ``unwritten``: 2 (drop the weights, every
    sync rewrites them) when every such parameter matches a preserve glob, else 1 (keep a CPU copy)."""
    return 2 if all(any(fnmatch.fnmatchcase(n, g) for g in preserved) for n in unwritten) else 1


class WeightSync:
    """Learners -> every engine, by the engines' path. Call it after each update; ``describe()``
    says how, once, for the run log (``log`` gets the one-time notes on parameters the sync does not write)."""

    def __init__(self, learners: LearnerGroup, rollouts: RolloutGroup, bucket_bytes: int = 256 << 20,
                 log: Callable[[str], None] | None = None, probe: SyncProbe | None = None) -> None:
        self.learners, self.rollouts, self.probe = learners, rollouts, probe
        self.log = log or (lambda message: None)
        self.dtype = learners.cfg.model.dtype  # what the engines run, whatever the learner's master dtype
        self.bucket_bytes = bucket_bytes
        lora = learners.cfg.model.lora
        self.adapter = lora is not None and lora.sync_mode == "adapter"
        manifest = learners.weight_manifest()
        # An adapter goes in whole (one vLLM LoRA load); full weights in buckets of whole layers.
        self.buckets = [[n for n, _ in manifest]] if self.adapter else plan_buckets(manifest, bucket_bytes)
        self.manifest_bytes = float(sum(b for _, b in manifest))
        infos = wait([w.transfer_info.remote() for w in rollouts.workers], rollouts.timeout_s, "rollout transfer info")
        choices = {(i["path"], i["sleep"]) for i in infos}
        if len(choices) > 1:
            raise ResourceError(f"rollout engines disagree on the weight sync (path, sleep): {sorted(choices)}")
        self.path, self.sleep = next(iter(choices))
        self.engine_ranks = [int(i["ranks"]) for i in infos]
        self.version = 0
        self._asleep = False
        self._pending: dict[str, float] = {}  # sleep/wake timings, reported with the next sync
        self.sleep_level = SLEEP_LEVEL
        self.unwritten: list[str] | None = None  # engine parameters the transfer does not write; None: no transfer yet
        if self.path != "reload":
            learner_gpus = wait([w.gpu_uuid.remote() for w in learners.workers], learners.timeout_s,
                                "learner GPU ids")
            check_placement(self.path, learner_gpus, [i["gpus"] for i in infos])
            refs = [w.init_weight_transfer.remote(self.path, rollouts.workers, self.engine_ranks, self.buckets,
                                                  bucket_bytes, rollouts.timeout_s)
                    for w in learners.workers]
            wait(refs, learners.timeout_s, f"weight transfer set-up ({self.path})")
        if self.sleep:  # learn what a transfer leaves alone before the first sleep could discard it
            self._transfer(self.version)

    def describe(self) -> str:
        lora = self.learners.cfg.model.lora
        probe = f"; {self.probe.describe()}" if self.probe is not None else "; no sync probe"
        if lora is not None:
            if self.adapter:
                return (f"LoRA adapter only (r={lora.r}, {len(self.buckets[0])} tensors, "
                        f"{self.manifest_bytes / 2**20:.2f} MiB at the learner's dtype) through Ray's object store "
                        f"into vLLM's LoRA slot, a fresh adapter id per sync{probe}")
            return (f"LoRA merged (W + (alpha/r) B A; the adapter cannot go alone: "
                    f"{'modules_to_save is set' if lora.modules_to_save else 'model.lora.sync=merged'}) through "
                    f"Ray's object store + vLLM reload_weights, {len(self.buckets)} bucket(s) at {self.dtype}{probe}")
        how = {
            "reload": "Ray object store + vLLM reload_weights",
            "nccl": f"vLLM NCCL weight transfer from learner rank 0 to {sum(self.engine_ranks)} engine worker(s)",
            "ipc": "vLLM CUDA IPC weight transfer from the learner rank on each engine's GPU",
        }[self.path]
        sleep = f"; engines sleep (level {self.sleep_level}) between rollouts" if self.sleep else ""
        return (f"{self.path} ({how}), {len(self.buckets)} bucket(s) of <= {self.bucket_bytes / 2**20:.0f} MiB "
                f"at {self.dtype}{sleep}{probe}")

    def __call__(self, version: int) -> dict[str, float]:
        """Send the learners' weights to every engine. ``time/sync_s`` is the transfer alone; when
        the engines sleep, ``time/sleep_s`` / ``time/wake_s`` / ``sync/freed_bytes`` come along; with a
        probe, ``sync/logprob_max_abs_diff`` and ``time/sync_probe_s`` (and a `WeightSyncError` when an
        engine's log-probs left the learner's)."""
        metrics, self._pending = self._pending, {}
        woke = self._asleep
        if woke:
            self._wake(["weights"], metrics)
        start = time.perf_counter()
        nbytes = self._transfer(version)
        sync_s = time.perf_counter() - start
        if woke:
            self._wake(["kv_cache"], metrics)
        self.version = version
        if self.probe is not None:
            metrics.update(self.probe.check(self.learners, self.rollouts, version))
        return {"sync/bytes": nbytes, "sync/buckets": float(len(self.buckets)), "time/sync_s": sync_s, **metrics}

    def before_rollout(self) -> None:
        """Make sure the engines are awake with current weights. Normally the sync already woke them;
        engines still asleep (no sync since) get their level-2-released weights back from the learners,
        which hold the same ones (timed as waking)."""
        if not self._asleep:
            return
        start = time.perf_counter()
        self._wake(["weights"], {})
        self._transfer(self.version)
        self._wake(["kv_cache"], {})
        self._add("time/wake_s", time.perf_counter() - start)

    def after_rollout(self) -> None:
        """Put the engines to sleep so the learners get their GPU memory (sleep on only)."""
        if not self.sleep or self._asleep:
            return
        start = time.perf_counter()
        freed = wait([w.sleep.remote(self.sleep_level) for w in self.rollouts.workers], self.rollouts.timeout_s,
                     "rollout sleep")
        self._asleep = True
        self._add("time/sleep_s", time.perf_counter() - start)
        self._add("sync/freed_bytes", sum(f["freed_bytes"] for f in freed))

    # ---- internals ---------------------------------------------------------------------------

    def _add(self, key: str, value: float) -> None:
        self._pending[key] = self._pending.get(key, 0.0) + value

    def _wake(self, tags: list[str], metrics: dict[str, float]) -> None:
        start = time.perf_counter()
        done = wait([w.wake_up.remote(tags) for w in self.rollouts.workers], self.rollouts.timeout_s,
                    f"rollout wake_up {tags}")
        if "kv_cache" in tags:
            self._asleep = not all(d["awake"] for d in done)
        metrics["time/wake_s"] = metrics.get("time/wake_s", 0.0) + time.perf_counter() - start

    def _transfer(self, version: int) -> float:
        """Bytes each engine received."""
        if self.adapter:
            ref = self.learners.export_adapter(dtype=self.dtype)
            return self.rollouts.load_adapter(ref, version)[0]["bytes"]
        if self.path == "reload":
            nbytes = 0.0
            for names in self.buckets:
                ref = self.learners.export_weights(names, dtype=self.dtype)
                nbytes += self.rollouts.update_weights(ref, version)[0]["bytes"]
        else:
            refs = [w.send_weights.remote(version) for w in self.learners.workers]
            nbytes = float(wait(refs, self.learners.timeout_s, f"weight transfer ({self.path})")[0]["bytes"])
        self._check_written()
        return nbytes

    def _check_written(self) -> None:
        """What the transfer did not write: noted once; sets the sleep level on the first transfer; an error
        when level-2 sleep has already discarded it."""
        reports = self.rollouts.unloaded()
        unwritten = sorted({n for r in reports for n in r["names"]})
        first, self.unwritten = self.unwritten is None, unwritten
        if not unwritten:
            return
        preserved = [g for r in reports for g in r["preserved"]]
        shown = ", ".join(unwritten[:5]) + (f" and {len(unwritten) - 5} more" if len(unwritten) > 5 else "")
        if self.sleep and self.sleep_level == 2 and not first and sleep_level(unwritten, preserved) == 1:
            raise WeightSyncError(
                f"the weight sync did not write {len(unwritten)} engine parameter(s) ({shown}) and the engines "
                "sleep at level 2, which discards them: they now hold uninitialised memory. Set "
                "rollout.sleep=off, or list them in rollout.vllm.sleep_preserve_parameter_names")
        if first:
            if self.sleep:
                self.sleep_level = sleep_level(unwritten, preserved)
            kept = ("; the engines sleep at level 1 (weights kept in CPU memory) so that they survive"
                    if self.sleep and self.sleep_level == 1 else "")
            self.log(f"note: the learners do not send {len(unwritten)} engine parameter(s) ({shown}); they keep "
                     f"the values the engines loaded from the model{kept}")
