"""PID 1 of a code sandbox: run as a script by :mod:`rlvr.verify.sandbox`, never imported by the program.

Inside fresh mount/PID(/network) namespaces it mounts ``/proc``, makes every mount read-only, mounts the
size-capped scratch tmpfs, forks the program under its rlimits, uid and dropped capabilities, and enforces the
wall-clock deadline; when it exits the kernel kills whatever is left in the namespace. Standard library only,
and nothing imported that the boot does not need: every sandboxed run pays for this file's start-up.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import signal
import sys
import time

_SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# The program's cwd and HOME, a fresh directory in the /tmp tmpfs (not /tmp itself, where an interpreter that
# lives under /tmp is re-exposed).
_WORKDIR = "/tmp/rlvr-sandbox"
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 2, 4, 8, 32, 4096, 16384
_MS_RDONLY = 1
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 0x1, 0x2
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture we run on (x86_64, aarch64)
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 24, 38
_RESULT_FD = 3  # where the program finds the optional result channel


class _Deadline(BaseException):
    pass


class _Sys:
    """The few libc calls Python has no wrapper for (mount, mount_setattr, prctl, capset)."""

    def __init__(self) -> None:
        import ctypes

        self.ct = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            err = self.ct.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        def enc(text: str | None) -> bytes | None:
            return None if text is None else text.encode()

        rc = self.libc.mount(enc(source), enc(target), enc(fstype), self.ct.c_ulong(flags), enc(data))
        self._check(rc, f"mount {target}")

    def make_readonly(self, path: str) -> None:
        """Read-only + nosuid for ``path`` and every mount below it (mount_setattr, Linux >= 5.12)."""
        ct = self.ct
        attr = (ct.c_uint64 * 4)(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0, 0, 0)
        rc = self.libc.syscall(ct.c_long(_SYS_MOUNT_SETATTR), ct.c_int(-100), path.encode(), ct.c_uint(0x8000),
                               attr, ct.c_size_t(ct.sizeof(attr)))
        self._check(rc, f"mount_setattr {path}")

    def prctl(self, option: int, arg: int) -> int:
        ul = self.ct.c_ulong
        return self.libc.prctl(self.ct.c_int(option), ul(arg), ul(0), ul(0), ul(0))

    def drop_bounding_set(self, last_cap: int) -> None:
        """No capability can come back through exec (needs CAP_SETPCAP: before the uid switch)."""
        for cap in range(last_cap + 1):
            self._check(self.prctl(_PR_CAPBSET_DROP, cap), f"prctl(CAPBSET_DROP, {cap})")

    def drop_capabilities(self) -> None:
        header = (self.ct.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        self._check(self.libc.capset(header, (self.ct.c_uint32 * 6)()), "capset")
        self._check(self.prctl(_PR_SET_NO_NEW_PRIVS, 1), "prctl(NO_NEW_PRIVS)")


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("sandbox config truncated")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: dict) -> None:
    data = marshal.dumps(message)
    data = memoryview(len(data).to_bytes(4, "big") + data)
    while data:
        data = data[os.write(fd, data):]


def _boot(status_fd: int) -> None:
    """PID 1: report our host pid, set up the filesystem, run the program, report how it ended, exit."""
    os.umask(0o022)
    try:
        _send(status_fd, {"pid": int(os.readlink("/proc/self"))})  # the host's /proc, before we replace it
        config = marshal.loads(_read_exact(0, int.from_bytes(_read_exact(0, 8), "big")))
        libc = _Sys()
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        _setup_filesystem(libc, config)
        report = _supervise(libc, config, last_cap)
    except BaseException as exc:  # anything here is the sandbox's failure, never the program's
        report = {"error": f"{type(exc).__name__}: {exc}"}
    _send(status_fd, report)
    os._exit(0)  # the kernel now kills whatever the program left in this PID namespace


def _setup_filesystem(libc: _Sys, config: dict) -> None:
    uid = config["uid"]
    held = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in config["expose"]]
    libc.mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    masks = {a for a in map(_first_closed_ancestor, config["expose"]) if a is not None}
    for ancestor in sorted(masks):
        libc.mount("tmpfs", ancestor, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
    _reexpose(libc, held)
    try:
        libc.make_readonly("/")
    except OSError as exc:
        if uid is None or exc.errno != 38:  # ENOSYS: old kernel; as root the uid drop still protects the host
            raise
    owner = "" if uid is None else f",uid={uid},gid={uid}"
    for path in _SCRATCH_DIRS:
        if os.path.isdir(path) and not os.path.islink(path):
            options = f"size={config['disk_bytes']},nr_inodes=16384,mode=0700{owner}"
            libc.mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
    _reexpose(libc, held)  # an interpreter that lived under a scratch dir
    os.mkdir(_WORKDIR, 0o700)
    if uid is not None:
        os.chown(_WORKDIR, uid, uid)
    for name, content in config["files"].items():
        fd = os.open(os.path.join(_WORKDIR, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(fd, "wb") as f:
            f.write(content)


def _first_closed_ancestor(path: str) -> str | None:
    """The highest proper ancestor of ``path`` that other users cannot traverse, e.g. ``/root``."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:i])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _reexpose(libc: _Sys, held: list[tuple[str, int]]) -> None:
    """Bind each held directory back (read-only) where a mount now hides it."""
    for path, fd in held:
        want = os.fstat(fd)
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                continue
        except OSError:
            pass
        os.makedirs(path, 0o755, exist_ok=True)
        libc.mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC)
        try:
            libc.make_readonly(path)
        except OSError:
            libc.mount(None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID)


def _supervise(libc: _Sys, config: dict, last_cap: int) -> dict:
    err_r, err_w = map(_above_result_fd, os.pipe())  # close-on-exec: EOF means exec succeeded, data says why not
    child = os.fork()
    if child == 0:
        try:
            _exec_program(libc, config, err_w, last_cap)
        except BaseException as exc:
            os.write(err_w, f"{type(exc).__name__}: {exc}".encode()[:4000])
        os._exit(127)
    os.close(err_w)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the program's streams: the parent sees EOF as soon as the program's side is gone
        os.dup2(devnull, fd)
    if config["channel_fd"] >= 0:
        os.close(config["channel_fd"])
    armed = [True]

    def on_alarm(signum: int, frame: object) -> None:
        if armed[0]:
            raise _Deadline

    signal.signal(signal.SIGALRM, on_alarm)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, config["wall_time_s"])
    status = usage = None
    try:
        error = b"".join(iter(lambda: os.read(err_r, 4096), b""))
        while True:  # as PID 1 we also reap orphans the program leaves behind
            pid, status, usage = os.wait4(-1, 0)
            if pid == child:
                break
        armed[0] = False
    except _Deadline:
        error = b""
    elapsed = time.monotonic() - start
    signal.setitimer(signal.ITIMER_REAL, 0)
    if error:
        return {"error": f"cannot start {config['argv'][0]}: {error.decode(errors='replace')}"}
    if status is None:
        return {"timed_out": True, "elapsed": elapsed}
    return {
        "timed_out": False,
        "elapsed": elapsed,
        "exit": os.waitstatus_to_exitcode(status),
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss * 1024,
    }


def _above_result_fd(fd: int) -> int:
    """``fd`` moved above the result channel's number (close-on-exec)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _RESULT_FD + 1)
    os.close(fd)
    return moved


def _exec_program(libc: _Sys, config: dict, err_w: int, last_cap: int) -> None:
    import resource

    os.setsid()
    keep = {0, 1, 2, err_w}
    if config["channel_fd"] >= 0:
        if config["channel_fd"] != _RESULT_FD:
            os.dup2(config["channel_fd"], _RESULT_FD)
        keep.add(_RESULT_FD)
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    os.chdir(_WORKDIR)
    for name, value in config["rlimits"]:
        limit = getattr(resource, name)
        soft, hard = (value, value + 1) if name == "RLIMIT_CPU" else (value, value)
        current = resource.getrlimit(limit)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(limit, (soft, hard))
    libc.drop_bounding_set(last_cap)
    uid = config["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    libc.drop_capabilities()
    os.execve(config["argv"][0], config["argv"], config["env"])


if __name__ == "__main__":
    _boot(int(sys.argv[1]))
