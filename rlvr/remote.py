"""Ray plumbing shared by the role groups: starting Ray, and waiting on remote calls with a deadline.

Every remote call rlvr makes goes through `wait`, so a dead actor is reported with its role at
once (Ray raises as soon as the actor dies) and a stuck one after its deadline, never a hang.
"""

from __future__ import annotations

import os
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError


class WorkerError(RuntimeError):
    """A Ray worker failed, died or missed its deadline; the message names its role."""


def init_ray(address: str | None, num_cpus: int | None, needed_cpus: int) -> None:
    """Attach to ``address`` (or ``RAY_ADDRESS``) or start a local instance with enough logical
    CPUs for every actor (actors reserve one CPU each; on CPU they take turns on the cores)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore::DeprecationWarning"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:
        cpus = num_cpus if num_cpus is not None else max(os.cpu_count() or 1, needed_cpus)
        ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=env, log_to_driver=True)


def wait(refs: Any, timeout_s: float, what: str) -> Any:
    """``ray.get`` with a deadline and an error that says which role failed and how."""
    try:
        return ray.get(refs, timeout=timeout_s)
    except GetTimeoutError:
        raise WorkerError(f"{what}: no answer within {timeout_s:.0f} s") from None
    except RayActorError as err:
        raise WorkerError(f"{what}: the worker died: {err}") from None
    except RayTaskError as err:
        cause = err.cause if getattr(err, "cause", None) is not None else err
        raise WorkerError(f"{what} failed: {type(cause).__name__}: {cause}\n{err}") from None


def shard_ranges(n: int, parts: int) -> list[range]:
    """Contiguous, near-equal ranges covering ``range(n)``."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out
