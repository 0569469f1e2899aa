"""Ray plumbing shared by the role groups: starting Ray, and waiting on remote calls with a deadline.

Every remote call rlvr makes goes through `wait`, so a dead actor is reported at once (Ray raises as
soon as the actor dies) and a stuck one after its deadline, never a hang. Groups `track` their actors,
so the report names the actor's role, node and pid and shows the tail of its log.
"""

from __future__ import annotations

import glob
import os
import socket
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from rlvr import preemption

_ROLES: dict[str, str] = {}  # actor id (hex) -> role, e.g. "rollout engine 1"
_LOGS: dict[str, str] = {}  # actor id (hex) -> its own log file (`rlvr.worker_log`)
_LOG_LINES = 20


class WorkerError(RuntimeError):
    """A Ray worker failed, died or missed its deadline; the message names its role."""


def init_ray(address: str | None, num_cpus: int | None, needed_cpus: int, verbose: bool = False) -> str:
    """Attach to ``address`` (or ``RAY_ADDRESS``) or start a local instance with enough logical
    CPUs for every actor (actors reserve one CPU each; on CPU they take turns on the cores).

    Without an address the instance is always a new local one (``address="local"``): a bare
    ``ray.init()`` would instead attach to the last cluster ``ray start`` left on this machine (its
    address file in /tmp/ray), a cluster the recipe never named, and then refuse ``num_cpus``.

    Workers' output stays in their own log files (`rlvr.worker_log`) unless ``verbose``: then Ray forwards it
    to the console, and Ray's own start-up notes are shown too. Returns what it did, for the run's log (Ray's own
    notes, "Connecting to existing Ray cluster", are hidden with the rest of its INFO lines)."""
    if ray.is_initialized():
        return "an instance already started in this process"
    import logging

    address = address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore::DeprecationWarning"}}
    quiet = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
    if address:
        ray.init(address=address, runtime_env=env, **quiet)
        how = f"attached to the cluster at {address}"
    else:
        cpus = num_cpus if num_cpus is not None else max(os.cpu_count() or 1, needed_cpus)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, runtime_env=env, **quiet)
        how = f"a local instance of {cpus} CPU(s)"
    preemption.rearm()  # ray.init replaced the driver's SIGTERM handler
    return how


def wait(refs: Any, timeout_s: float, what: str) -> Any:
    """``ray.get`` with a deadline and an error that says which actor failed, where, and how."""
    try:
        return ray.get(refs, timeout=timeout_s)
    except GetTimeoutError:
        late = [_describe(actor) for actor in _unanswered(refs)]
        who = f" from {'; '.join(head for head, _ in late)}" if late else ""
        raise WorkerError(f"{what}: no answer within {timeout_s:.0f} s{who}{''.join(log for _, log in late)}") from None
    except RayActorError as err:
        head, log = _describe(getattr(err, "actor_id", None))
        lines = str(err).strip().splitlines()
        why = next((line.strip() for line in lines if "exit detail" in line.lower()), lines[0] if lines else "")
        raise WorkerError(f"{what}: {head} died. {why[:300]}{log}") from None
    except RayTaskError as err:
        cause = err.cause if getattr(err, "cause", None) is not None else err
        raise WorkerError(f"{what} failed: {type(cause).__name__}: {cause}\n{err}") from None


def free_port(host: str = "") -> int:
    """A TCP port free on ``host`` ("" = every interface) right now, for a server started next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def placement() -> dict[str, Any]:
    """Where the calling actor runs: ``node`` ("host/ray-node-id", distinct for two raylets on one
    machine), ``ip`` and ``pid``. Actors return it from their readiness calls."""
    node_id = ray.get_runtime_context().get_node_id()
    return {"node": f"{socket.gethostname()}/{node_id[:8]}", "ip": ray.util.get_node_ip_address(), "pid": os.getpid()}


def track(handle: Any, role: str, log: str | None = None) -> None:
    """Name an actor (and its own log file, if it has one) for failure reports."""
    _ROLES[handle._actor_id.hex()] = role
    if log is not None:
        _LOGS[handle._actor_id.hex()] = log


def _unanswered(refs: Any) -> list[str]:
    """Actor ids of the calls in ``refs`` that have not returned."""
    refs = list(dict.fromkeys(refs if isinstance(refs, list) else [refs]))
    try:
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=0)
    except Exception:  # the report must not replace the error it is part of
        return []
    ids = []
    for ref in pending:
        try:
            ids.append(ref.task_id().actor_id().hex())
        except Exception:  # a task, not an actor call
            continue
    return list(dict.fromkeys(ids))


def _describe(actor_id: str | None) -> tuple[str, str]:
    """("rollout engine 0 (node 10.0.0.2, pid 123, state DEAD)", the tail of its log when it is on this node)."""
    if actor_id is None:
        return "a worker", ""
    role = _ROLES.get(actor_id, f"actor {actor_id[:8]}")
    try:
        from ray._private import state  # the GCS's view; works without the dashboard

        info = state.actors(actor_id) or {}
    except Exception:
        info = {}
    node, pid = (info.get("Address") or {}).get("IPAddress"), info.get("Pid")
    head = f"{role} (node {node or '?'}, pid {pid or '?'}, state {info.get('State', '?')})"
    log = _log_tail(pid, _LOGS.get(actor_id)) if pid else None
    return head, f"\n  last lines of the log of {role} ({log[0]}):\n{log[1]}" if log else ""


def _log_tail(pid: int, own: str | None = None) -> tuple[str, str] | None:
    """(path, last lines) of the actor's own log file when it has one, else of the Ray worker log for ``pid``
    on this machine, if there is one."""
    try:
        logs = ray._private.worker._global_node.get_logs_dir_path()
    except Exception:
        logs = "/tmp/ray/session_latest/logs"
    for path in [own] if own and os.path.isfile(own) else glob.glob(os.path.join(logs, f"worker-*-{pid}.err")):
        try:
            with open(path, errors="replace") as f:
                lines = [line.rstrip() for line in f.readlines()[-_LOG_LINES:]]
        except OSError:
            continue
        return path, "\n".join(f"    {line}" for line in lines) or "    (empty)"
    return None


def shard_ranges(n: int, parts: int) -> list[range]:
    """Contiguous, near-equal ranges covering ``range(n)``."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out
