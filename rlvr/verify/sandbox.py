"""Run untrusted Python in a throwaway Linux sandbox: fresh namespaces, an unprivileged uid, rlimits, a deadline.

Why: code verifiers execute millions of model-written programs, any of which may loop forever, fork-bomb, allocate
without bound, write wherever it can or open connections. A container or VM per program costs hundreds of
milliseconds; Linux namespaces give the isolation that matters here for a few milliseconds, with no daemon.

How one run goes (a ``subprocess`` chain, so it works from threads, Ray actors and daemonic pool workers):

* ``setpriv --pdeathsig KILL`` then ``unshare`` (util-linux) create new mount, PID and, unless
  ``allow_network``, network namespaces: the program sees no network (not even loopback is up), only its own
  processes, and a private mount table. If our process dies, the chain dies with it (parent-death signals).
* :mod:`rlvr.verify.sandbox_init`, run as a script, is PID 1 of the new PID namespace. As root it mounts a fresh
  ``/proc``, makes every mount read-only, mounts small size-capped tmpfs on ``/tmp`` (the program's cwd and
  HOME are a fresh directory in it), ``/var/tmp`` and ``/dev/shm``, forks the program, and enforces the
  wall-clock deadline itself. When the program exits or overruns, PID 1 exits and the kernel SIGKILLs
  everything left in the namespace, so a fork bomb or a grandchild that ignores signals cannot survive; the
  scratch tmpfs vanish with the namespace, so nothing is left on the host even when our own process is
  SIGKILLed mid-run.
* The program runs ``python -I main.py`` with RLIMIT_CPU/AS/FSIZE/NPROC/NOFILE and CORE=0, a clean environment,
  no capabilities, ``no_new_privs``, and, when we are root, a uid/gid of its own (unique among concurrent runs,
  from 0x70000000 up): RLIMIT_NPROC counts processes per uid and never applies to uid 0, and a fixed uid such
  as ``nobody`` would let one run's fork bomb starve the others. Root-only directories on the way to the
  interpreter (e.g. ``/root`` for a pyenv Python) are replaced by an empty tmpfs that shows only the interpreter.
* Not root (or root in a rootless container, where uids from 0x70000000 are not mapped): ``unshare --user
  --map-root-user`` adds a user namespace. The program then keeps the caller's uid (there is no other uid to
  switch to), so it can *read* whatever the caller can; writes still fail everywhere but its tmpfs, it has no
  capabilities, and RLIMIT_NPROC counts per user namespace, so concurrent runs stay independent.
* Without namespaces (e.g. Docker's default seccomp profile) every run raises :class:`SandboxUnavailableError`,
  even with ``allow_network=True`` (which only skips the network namespace): there is no weaker fallback.

Limits of the design: this is not a VM. The program shares the kernel (no seccomp filter), can read
world-readable files, and the memory bound is per process (RLIMIT_AS x ``max_processes`` in the worst case,
plus the tmpfs sizes); total CPU is bounded by the wall-clock deadline.
"""

from __future__ import annotations

import ast
import functools
import itertools
import marshal
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from rlvr.verify import sandbox_init
from rlvr.verify.sandbox_init import _WORKDIR

__all__ = [
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailableError",
    "run_python",
    "sandbox_available",
]

_BOOT_SCRIPT = os.path.abspath(sandbox_init.__file__)
_UID_BASE = 0x70000000  # 0x70000000-0x7fffffff: above systemd's container ranges, below the "negative" uids
_GRACE_S = 5.0  # beyond wall_time_s, for namespace set-up, before the parent kills the sandbox itself
_DRAIN_S = 5.0
_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROGRAM_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": _WORKDIR,
    "TMPDIR": _WORKDIR,
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    # numeric libraries start one thread per core by default; threads count against max_processes
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_uid_counter = itertools.count()
_UNSHARE_ON_KILL = b"unshare: sigprocmask unblock failed: Invalid argument\n"


class SandboxError(RuntimeError):
    """The sandbox itself failed (set-up, exec of the interpreter); says nothing about the program."""


class SandboxUnavailableError(SandboxError):
    """This machine cannot create the sandbox (missing namespaces or util-linux tools); nothing was run."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits. CPU and memory are per process (RLIMIT_CPU is whole seconds, rounded up; RLIMIT_AS counts
    address space, not RSS); ``max_processes`` counts threads too; ``disk_bytes`` caps each scratch tmpfs;
    ``max_output_bytes`` applies to stdout and stderr separately, and exceeding it kills the run."""

    cpu_time_s: float = 5.0
    wall_time_s: float = 10.0
    memory_bytes: int = 1 << 30
    file_size_bytes: int = 16 << 20
    disk_bytes: int = 64 << 20
    max_processes: int = 16
    max_output_bytes: int = 4 << 20
    allow_network: bool = False

    def __post_init__(self) -> None:
        for name in ("cpu_time_s", "wall_time_s", "memory_bytes", "file_size_bytes", "disk_bytes",
                     "max_processes", "max_output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass
class SandboxResult:
    """How one run ended.

    ``status``: "ok" (exit 0), "error" (non-zero exit), "memory" (non-zero exit with a MemoryError), "timeout"
    (wall clock or CPU limit), "killed" (another signal, e.g. SIGSEGV), "output_limit" (stdout or stderr went
    over ``max_output_bytes``; the run was killed). ``exit_code`` is None unless the program exited by itself;
    ``signal`` is the terminating signal, if any. ``channel`` is what the program wrote to fd 3 when run with
    ``channel=True``.
    """

    status: str
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_s: float
    cpu_s: float | None = None
    max_rss_bytes: int | None = None
    channel: bytes = b""
    output_truncated: bool = False


def run_python(
    code: str,
    stdin: str | bytes = "",
    limits: SandboxLimits | None = None,
    *,
    python: str | None = None,
    channel: bool = False,
) -> SandboxResult:
    """Run ``code`` as ``main.py`` with ``python -I`` in a fresh sandbox, feeding it ``stdin``.

    ``python`` defaults to this interpreter (so the program sees the same installed packages). With
    ``channel=True`` the program also gets a pipe on fd 3 whose contents come back in ``result.channel``;
    the program can write anything there, so a caller must authenticate what it reads.
    Raises :class:`SandboxUnavailableError` when the sandbox cannot be created and :class:`SandboxError` when
    it fails later; never for anything the program does. Blocks for at most about ``wall_time_s`` + 10 s.
    """
    limits = limits or SandboxLimits()
    setpriv, unshare = _tools()
    interpreter = os.path.abspath(shutil.which(python) or python) if python else sys.executable
    if not interpreter:
        raise SandboxUnavailableError("no Python interpreter to run (sys.executable is empty; pass python=...)")
    is_root = _own_uids_available()
    config = {
        "argv": [interpreter, "-I", "main.py"],
        "env": dict(_PROGRAM_ENV),
        "files": {"main.py": code.encode("utf-8", "surrogateescape")},
        "uid": _UID_BASE + ((os.getpid() & 0x3FFFFF) << 6) + (next(_uid_counter) & 63) if is_root else None,
        "expose": list(_interpreter_dirs(interpreter)) if is_root else [],
        "disk_bytes": limits.disk_bytes,
        "wall_time_s": limits.wall_time_s,
        "rlimits": [
            ("RLIMIT_CPU", math.ceil(limits.cpu_time_s)),
            ("RLIMIT_AS", limits.memory_bytes),
            ("RLIMIT_FSIZE", limits.file_size_bytes),
            ("RLIMIT_NPROC", limits.max_processes),
            ("RLIMIT_NOFILE", 1024),
            ("RLIMIT_CORE", 0),
        ],
        "channel_fd": -1,
    }
    namespaces = ["--mount", "--pid", "--fork", "--kill-child"]
    namespaces += [] if limits.allow_network else ["--net"]
    namespaces += [] if is_root else ["--user", "--map-root-user"]
    status_r, status_w = os.pipe()
    chan_r, chan_w = os.pipe() if channel else (-1, -1)
    config["channel_fd"] = chan_w
    payload = marshal.dumps(config)
    stdin_bytes = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    command = [setpriv, "--pdeathsig", "KILL", "--", unshare, *namespaces, "--",
               sys.executable, "-I", "-S", _BOOT_SCRIPT, str(status_w)]
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=[fd for fd in (status_w, chan_w) if fd >= 0],
            env={"PATH": _TOOL_PATH, "LANG": "C.UTF-8"},
            cwd="/",
            start_new_session=True,
        )
    except OSError as exc:
        for fd in (status_r, status_w, chan_r, chan_w):
            if fd >= 0:
                os.close(fd)
        raise SandboxUnavailableError(f"cannot start the sandbox: {exc}") from exc
    os.close(status_w)
    if chan_w >= 0:
        os.close(chan_w)
    io = _Exchange(proc, len(payload).to_bytes(8, "big") + payload + stdin_bytes, status_r, chan_r, limits)
    return io.run()


@functools.lru_cache(maxsize=8)
def sandbox_available(python: str | None = None, allow_network: bool = False) -> tuple[bool, str]:
    """Whether :func:`run_python` works here, and how it isolates (or why not). Runs one tiny program; cached."""
    try:
        result = run_python("print('ok')", limits=SandboxLimits(wall_time_s=30.0, allow_network=allow_network),
                            python=python)
    except SandboxError as exc:
        return False, str(exc)
    if result.status != "ok" or result.stdout.strip() != "ok":
        return False, f"probe program failed ({result.status}): {result.stderr.strip()[-500:]}"
    how = "as root: program under its own unprivileged uid" if _own_uids_available() else (
        "unprivileged: user namespace, program keeps the caller's uid and can read what the caller can")
    net = "shared host network" if allow_network else "no network"
    return True, f"mount+PID namespaces, {net}, read-only filesystem except scratch tmpfs; {how}"


@functools.lru_cache(maxsize=1)
def _own_uids_available() -> bool:
    """Root that can hand out our uid range: not the case for root inside a rootless container's user namespace,
    which then takes the unprivileged path (a nested user namespace) instead."""
    if os.geteuid() != 0:
        return False
    for table in ("/proc/self/uid_map", "/proc/self/gid_map"):
        try:
            with open(table) as f:
                ranges = [tuple(map(int, line.split())) for line in f if line.strip()]
        except OSError:
            return False
        if not any(inside <= _UID_BASE and inside + count >= _UID_BASE + (1 << 28) for inside, _, count in ranges):
            return False
    return True


@functools.lru_cache(maxsize=1)
def _tools() -> tuple[str, str]:
    found = [shutil.which(name, path=os.environ.get("PATH", "") + ":" + _TOOL_PATH) for name in ("setpriv", "unshare")]
    if not all(found) or sys.platform != "linux":
        raise SandboxUnavailableError("the sandbox needs Linux and util-linux's setpriv and unshare on PATH")
    return found[0], found[1]  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def _interpreter_dirs(python: str) -> tuple[str, ...]:
    """Directories the interpreter needs (its prefixes, and every directory its symlink chain passes through)."""
    if python == sys.executable:
        prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    else:
        query = "import sys; print(repr([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))"
        try:
            out = subprocess.run([python, "-I", "-c", query], capture_output=True, timeout=60, check=True).stdout
            prefixes = ast.literal_eval(out.decode())
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise SandboxUnavailableError(f"cannot query interpreter {python!r}: {exc}") from exc
    dirs = {os.path.realpath(p) for p in prefixes}
    link = os.path.abspath(python)
    for _ in range(40):
        dirs.add(os.path.realpath(os.path.dirname(link)))
        if not os.path.islink(link):
            break
        link = os.path.join(os.path.dirname(link), os.readlink(link))
    return tuple(sorted(d for d in dirs if d != "/" and not any(d.startswith(o + "/") for o in dirs)))


class _Exchange:
    """Feed the sandbox's stdin and collect its streams without ever blocking past the deadline."""

    def __init__(self, proc: subprocess.Popen, to_send: bytes, status_fd: int, chan_fd: int,
                 limits: SandboxLimits) -> None:
        self.proc, self.limits = proc, limits
        self.started = time.monotonic()
        self.deadline = self.started + limits.wall_time_s + _GRACE_S
        self.pending = memoryview(to_send)
        self.buffers: dict[int, bytearray] = {}
        self.overflow: set[int] = set()
        self.killed_for: str | None = None
        self.stdin_fd = proc.stdin.fileno()  # type: ignore[union-attr]
        self.out_fd, self.err_fd = proc.stdout.fileno(), proc.stderr.fileno()  # type: ignore[union-attr]
        self.status_fd, self.chan_fd = status_fd, chan_fd
        self.selector = selectors.DefaultSelector()

    def run(self) -> SandboxResult:
        try:
            self._pump()
        finally:
            self.selector.close()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                stream.close()  # type: ignore[union-attr]
            for fd in (self.status_fd, self.chan_fd):
                if fd >= 0:
                    os.close(fd)
            self._reap()
        return self._result()

    def _pump(self) -> None:
        os.set_blocking(self.stdin_fd, False)
        self.selector.register(self.stdin_fd, selectors.EVENT_WRITE)
        for fd in (self.out_fd, self.err_fd, self.status_fd, self.chan_fd):
            if fd >= 0:
                self.buffers[fd] = bytearray()
                self.selector.register(fd, selectors.EVENT_READ)
        while self.selector.get_map():
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                if self.killed_for is not None:
                    return  # something still holds a pipe after the kill: give up on it; _reap() kills unshare
                self._kill("timeout")
                continue
            for key, _ in self.selector.select(remaining):
                if key.fd == self.stdin_fd:
                    self._write()
                else:
                    self._read(key.fd)

    def _write(self) -> None:
        try:
            written = os.write(self.stdin_fd, self.pending[: 1 << 16])
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the program exited (or never started) without reading everything
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self.selector.unregister(self.stdin_fd)
            self.proc.stdin.close()  # type: ignore[union-attr]

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.selector.unregister(fd)
            return
        buf = self.buffers[fd]
        cap = self.limits.max_output_bytes
        if fd == self.status_fd or len(buf) < cap:
            buf += chunk
        if fd != self.status_fd and len(buf) > cap:
            self.overflow.add(fd)
            del buf[cap:]
            if fd != self.chan_fd and self.killed_for is None:
                self._kill("output_limit")

    def _kill(self, why: str) -> None:
        """SIGKILL the sandbox's PID 1 (the kernel then kills the whole namespace; unshare reaps it and exits)."""
        self.killed_for = why
        self.deadline = time.monotonic() + _DRAIN_S
        init_pid = next((m["pid"] for m in self._messages() if "pid" in m), None)
        if init_pid is not None:
            try:
                pidfd = os.pidfd_open(init_pid)
            except ProcessLookupError:
                return  # already gone
            except OSError:  # no pidfds (Linux < 5.3): fall through
                pidfd = None
            if pidfd is not None:
                try:
                    if _parent_pid(init_pid) == self.proc.pid:  # not a recycled pid
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                        return
                finally:
                    os.close(pidfd)
        # No PID 1 yet (or no pidfds): killing unshare takes PID 1 down through its parent-death signal; PID 1 is
        # then reaped by the host's init instead of by unshare.
        self.proc.kill()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=_DRAIN_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _messages(self) -> list[dict]:
        data, messages, pos = bytes(self.buffers.get(self.status_fd, b"")), [], 0
        while pos + 4 <= len(data):
            size = int.from_bytes(data[pos: pos + 4], "big")
            if pos + 4 + size > len(data):
                break
            messages.append(marshal.loads(data[pos + 4: pos + 4 + size]))
            pos += 4 + size
        return messages

    def _result(self) -> SandboxResult:
        messages = self._messages()
        report = messages[-1] if len(messages) > 1 else {}
        stderr_bytes = bytes(self.buffers[self.err_fd])
        if "error" in report:
            raise SandboxError(f"sandbox failed: {report['error']}")
        if not messages:
            detail = stderr_bytes.decode(errors="replace").strip()[-2000:]
            raise SandboxUnavailableError(
                f"the sandbox did not start ({detail or f'exit status {self.proc.returncode}'}). It needs mount, "
                "PID and (unless allow_network=True) network namespaces: run as root, or enable unprivileged user "
                "namespaces; in Docker, run with --privileged or a seccomp profile that allows unshare"
            )
        code = report.get("exit")
        cpu = report.get("cpu")
        if self.killed_for == "output_limit":
            status = "output_limit"
        elif self.killed_for == "timeout" or report.get("timed_out"):
            status = "timeout"
        elif code is None:
            status = "killed"  # PID 1 died without a report (e.g. the host's OOM killer)
        elif code < 0:
            cpu_limit = math.ceil(self.limits.cpu_time_s)
            out_of_cpu = -code == signal.SIGXCPU or (-code == signal.SIGKILL and (cpu or 0) >= cpu_limit)
            status = "timeout" if out_of_cpu else "killed"
        elif code == 0:
            status = "ok"
        else:
            last = stderr_bytes.decode(errors="replace").strip().rsplit("\n", 1)[-1]
            status = "memory" if "MemoryError" in last else "error"
        return SandboxResult(
            status=status,
            exit_code=code if code is not None and code >= 0 else None,
            signal=-code if code is not None and code < 0 else None,
            stdout=self._text(self.out_fd),
            stderr=self._text(self.err_fd),
            timed_out=status == "timeout",
            elapsed_s=report.get("elapsed", time.monotonic() - self.started),
            cpu_s=cpu,
            max_rss_bytes=report.get("rss"),
            channel=bytes(self.buffers.get(self.chan_fd, b"")),
            output_truncated=bool(self.overflow & {self.out_fd, self.err_fd}),
        )

    def _text(self, fd: int) -> str:
        data = bytes(self.buffers[fd])
        if fd == self.err_fd and self.killed_for is not None and data.endswith(_UNSHARE_ON_KILL):
            data = data[: -len(_UNSHARE_ON_KILL)]  # unshare's own complaint when its child dies by SIGKILL
        text = data.decode("utf-8", errors="replace")
        if fd in self.overflow:
            text += f"\n[... truncated: more than {self.limits.max_output_bytes} bytes]"
        return text


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
