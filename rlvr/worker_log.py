"""Each worker's own output in its own file: ``RUN/logs/<role>-<i>.log``.

vLLM, DeepSpeed, transformers and Ray print dozens of INFO/WARNING lines per engine start and some on every
step (``Reloading and processing weights``, ``Successfully reset prefix cache``, a harmless rotary-embedding
warning on each reload); on the console they bury rlvr's own lines. So every Ray actor rlvr starts points its
file descriptors 1 and 2 (Python and C-level output alike, and every logging handler already writing to
them) at its log file before it imports an engine, and Ray does not forward worker output to the driver.
Nothing is filtered: whatever a worker prints is in its file, and the failure report quotes the file's tail
(`rlvr.remote`). ``--verbose`` (``logging.verbose``) tees the output: to the file and to Ray, which shows it
on the console as before.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

_CHUNK = 1 << 16


def role_log(log_dir: str | Path | None, role: str, index: int) -> str | None:
    """``log_dir/<role>-<index>.log`` (None without a log directory: the worker keeps Ray's own logs)."""
    return None if log_dir is None else str(Path(log_dir) / f"{role}-{index}.log")


def redirect_output(path: str | None, tee: bool = False) -> bool:
    """Point this process's stdout and stderr at ``path`` (appending; ``tee``: and at what they were before, i.e.
    Ray's worker log, which Ray forwards to the console when asked). False, with nothing changed, when there is
    no path or it cannot be opened (a node that does not see the run directory keeps Ray's worker logs)."""
    if path is None:
        return False
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    if tee:
        read, write = os.pipe()
        before = os.dup(1)
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        threading.Thread(target=_copy, args=(read, (fd, before)), name="rlvr-worker-log", daemon=True).start()
    else:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    return True


def _copy(source: int, targets: tuple[int, ...]) -> None:
    """Copy ``source`` to every target until it closes (the process exits)."""
    while chunk := os.read(source, _CHUNK):
        for fd in targets:
            try:
                os.write(fd, chunk)
            except OSError:
                continue
