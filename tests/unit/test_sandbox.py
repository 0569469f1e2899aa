"""The sandbox: real runs of hostile programs (loops, fork bombs, memory bombs, escapes, network), and checks
that the machine is unharmed afterwards: no sandbox process left, no child of ours left, nothing written.

Nothing here is skipped when the sandbox is unavailable: on a machine that cannot run it, these tests fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlvr.verify import sandbox
from rlvr.verify.sandbox import (
    SandboxError,
    SandboxLimits,
    SandboxUnavailableError,
    run_python,
    sandbox_available,
)

FAST = SandboxLimits(cpu_time_s=1, wall_time_s=2)
UID_RANGE = range(0x70000000, 0x80000000)
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def _processes() -> Iterator[tuple[int, bytes, int, int]]:
    """(pid, cmdline, real uid, parent pid) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        yield int(entry), cmdline, int(fields["Uid"].split()[0]), int(fields["PPid"])


def _leftovers(known: frozenset[int] = frozenset()) -> list[str]:
    """Sandbox processes (by uid), boot scripts, and children of ours not in ``known``."""
    return [f"{pid} uid={uid} ppid={ppid} {cmdline!r}" for pid, cmdline, uid, ppid in _processes()
            if pid != os.getpid() and pid not in known
            and (uid in UID_RANGE or sandbox._BOOT_SCRIPT.encode() in cmdline or ppid == os.getpid())]


def _showing(marker: str) -> list[int]:
    """Processes with ``marker`` in their command line."""
    return [pid for pid, cmdline, _, _ in _processes() if marker.encode() in cmdline and pid != os.getpid()]


@pytest.fixture(scope="module", autouse=True)
def _sandbox_works() -> None:
    available, why = sandbox_available()
    assert available, f"the sandbox must work on this machine: {why}"


@pytest.fixture(autouse=True)
def _machine_unharmed() -> Iterator[None]:
    """After every test: no sandbox process, no boot script, no new child of ours (running or unreaped)."""
    known = frozenset(pid for pid, _, _, ppid in _processes() if ppid == os.getpid())  # e.g. earlier tests' helpers
    yield
    deadline = time.monotonic() + 5
    while _leftovers(known=known) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _leftovers(known=known) == []


def _marker() -> str:
    return f"RLVR-MARKER-{uuid.uuid4().hex}"


# -- ordinary runs -------------------------------------------------------------------------------------------------


def test_stdin_stdout_stderr_and_exit_code() -> None:
    result = run_python("import sys\nprint(input()[::-1])\nprint('warn', file=sys.stderr)\nsys.exit(3)", "olleh\n")
    assert (result.status, result.exit_code, result.signal) == ("error", 3, None)
    assert result.stdout == "hello\n"
    assert result.stderr == "warn\n"
    assert not result.timed_out and 0 < result.elapsed_s < 5 and result.cpu_s is not None

    ok = run_python("print(sum(map(int, open(0).read().split())))", stdin=b"1 2 3\n" * 100_000)
    assert (ok.status, ok.exit_code, ok.stdout) == ("ok", 0, "600000\n")


def test_runs_isolated_unprivileged_with_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLVR_TEST_SECRET", "hunter2")
    code = """
        import json, os, sys
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
        print(json.dumps({
            "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd(),
            "env": dict(os.environ), "isolated": sys.flags.isolated, "pids": sorted(
                int(p) for p in os.listdir("/proc") if p.isdigit()),
            "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
            "no_new_privs": status["NoNewPrivs"].strip(), "files": sorted(os.listdir(".")),
        }))
    """
    result = run_python(textwrap.dedent(code))
    assert result.status == "ok", result.stderr
    info = json.loads(result.stdout)
    if sandbox._own_uids_available():
        assert info["uid"] in UID_RANGE and info["gid"] == info["uid"] and info["groups"] == []
    assert info["cwd"] == "/tmp/rlvr-sandbox" and info["env"]["HOME"] == "/tmp/rlvr-sandbox"
    assert "RLVR_TEST_SECRET" not in info["env"] and "PYTHONPATH" not in info["env"]
    assert info["isolated"] == 1
    assert info["pids"][0] == 1 and len(info["pids"]) <= 3  # its own PID namespace: init, the program (+ ps)
    assert int(info["cap_eff"], 16) == 0 and int(info["cap_bnd"], 16) == 0 and info["no_new_privs"] == "1"
    assert info["files"] == ["main.py"]


def test_result_channel_is_opt_in() -> None:
    code = "import os\ntry:\n    os.write(3, b'via fd 3')\nexcept OSError as e:\n    print('closed', e.errno)"
    assert run_python(code, channel=True).channel == b"via fd 3"
    closed = run_python(code)
    assert closed.channel == b"" and closed.stdout.startswith("closed 9")  # EBADF


def test_concurrent_runs_get_their_own_uid_and_process_budget() -> None:
    bomber = threading.Thread(target=run_python, args=(FORK_BOMB, "", FAST))
    bomber.start()
    time.sleep(0.3)  # the bomb is at its process limit while the runs below start
    results: list[str] = []
    workers = [threading.Thread(target=lambda: results.append(run_python("import os; print(os.getuid())").stdout))
               for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    bomber.join()
    assert len(results) == 6 and all(r.strip().isdigit() for r in results)
    if sandbox._own_uids_available():
        assert len(set(results)) == 6


# -- hostile programs ------------------------------------------------------------------------------------------------


def test_infinite_loop_hits_the_cpu_limit() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass", limits=SandboxLimits(cpu_time_s=1, wall_time_s=10))
    assert result.status == "timeout" and result.timed_out
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL)
    assert time.monotonic() - started < 5


def test_sleeping_program_hits_the_wall_clock_deadline() -> None:
    started = time.monotonic()
    result = run_python("import time\nprint('started', flush=True)\ntime.sleep(600)", limits=FAST)
    assert result.status == "timeout" and result.timed_out and result.stdout == "started\n"
    assert 1.9 < time.monotonic() - started < 5


def test_fork_bomb_is_contained_and_fully_killed() -> None:
    counted = run_python(textwrap.dedent("""
        import os, time
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError as e:
            print(n, e.errno)
    """), limits=SandboxLimits(max_processes=8, wall_time_s=5))
    count, errno = map(int, counted.stdout.split())
    assert counted.status == "ok" and errno == 11 and count < 8  # EAGAIN at RLIMIT_NPROC
    started = time.monotonic()
    bomb = run_python(FORK_BOMB, limits=FAST)
    assert bomb.status == "timeout" and time.monotonic() - started < 5
    assert run_python("print('still fine')").stdout == "still fine\n"  # _machine_unharmed checks the rest


def test_grandchild_that_escapes_its_session_and_ignores_signals_dies() -> None:
    marker = _marker()
    code = f"""
        import os, signal, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(sig, signal.SIG_IGN)
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{marker}"])
            os._exit(0)
        time.sleep(0.5)
        print("parent exits")
    """
    result = run_python(textwrap.dedent(code))
    assert result.status == "ok" and result.stdout == "parent exits\n"
    assert _showing(marker) == []


def test_memory_bomb_fails_with_memory_status() -> None:
    limits = SandboxLimits(memory_bytes=256 << 20, wall_time_s=10)
    big = run_python("x = bytearray(8 << 30)", limits=limits)
    assert big.status == "memory" and "MemoryError" in big.stderr
    grow = run_python("chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))", limits=limits)
    assert grow.status == "memory" and grow.max_rss_bytes is not None and grow.max_rss_bytes < 256 << 20


def test_writes_outside_the_sandbox_fail_and_leave_nothing(tmp_path: Path) -> None:
    name = f"rlvr-escape-{uuid.uuid4().hex}"
    repo = Path(__file__).resolve().parents[2]
    blocked = [tmp_path / name, Path("/etc") / name, repo / name, Path.home() / name, Path(sandbox.__file__)]
    private = [Path("/tmp") / name, Path("/var/tmp") / name, Path("/dev/shm") / name]
    before = Path(sandbox.__file__).read_bytes()
    code = f"""
        import os
        for path in {[str(p) for p in blocked + private]!r}:
            try:
                with open(path, "ab") as f:
                    f.write(b"pwned")
                print("wrote", path)
            except OSError as e:
                print("blocked", path, e.errno)
        try:
            os.symlink("/etc/passwd", "link")
            os.rename("link", "/etc/{name}")
            print("wrote rename")
        except OSError as e:
            print("blocked rename", e.errno)
    """
    result = run_python(textwrap.dedent(code))
    assert result.status == "ok", result.stderr
    lines = result.stdout.splitlines()
    for path in blocked:
        assert any(line.startswith(f"blocked {path} ") for line in lines), result.stdout
        assert path == Path(sandbox.__file__) or not path.exists()
    assert "blocked rename 18" in lines  # EXDEV: /etc is another (read-only) mount
    for path in private:  # writable inside, on a tmpfs that died with the sandbox
        assert f"wrote {path}" in lines and not path.exists()
    assert Path(sandbox.__file__).read_bytes() == before


def test_work_directory_disappears_even_after_a_timeout() -> None:
    name = f"rlvr-left-{uuid.uuid4().hex}"
    code = f"import time\nopen('{name}', 'w').write('x' * 1000)\nprint('written', flush=True)\ntime.sleep(600)"
    result = run_python(code, limits=FAST)
    assert result.status == "timeout" and result.stdout == "written\n"
    assert not any((Path(d) / name).exists() for d in ("/tmp", "/var/tmp", "/dev/shm", "/"))


def test_disk_and_file_size_are_capped() -> None:
    limits = SandboxLimits(file_size_bytes=1 << 20, disk_bytes=4 << 20)
    too_big = run_python("open('f', 'wb').write(b'x' * (2 << 20))", limits=limits)
    assert too_big.status == "error" and "File too large" in too_big.stderr
    code = "for i in range(10):\n    open(f'f{i}', 'wb').write(b'x' * (900 << 10))"
    assert "No space left on device" in run_python(code, limits=limits).stderr


def test_network_is_unreachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = f"""
            import socket
            print(sorted(name for _, name in socket.if_nameindex()))
            for host in ("127.0.0.1", "1.1.1.1"):
                try:
                    socket.create_connection((host, {port}), timeout=2).close()
                    print("connected", host)
                except OSError as e:
                    print("blocked", host, type(e).__name__)
        """
        result = run_python(textwrap.dedent(code))
        assert result.status == "ok", result.stderr
        assert result.stdout.splitlines()[0] == "['lo']"
        assert "blocked 127.0.0.1" in result.stdout and "connected" not in result.stdout
        with pytest.raises(TimeoutError):
            server.accept()
        # the same program with the network allowed does connect: the check above is not vacuous
        allowed = run_python(textwrap.dedent(code), limits=SandboxLimits(allow_network=True))
        assert "connected 127.0.0.1" in allowed.stdout
        server.accept()[0].close()


def test_output_is_truncated_and_the_run_stopped() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    print('x' * 999)", limits=SandboxLimits(max_output_bytes=10_000))
    assert result.status == "output_limit" and result.output_truncated
    assert result.stdout.startswith("x" * 999 + "\n")
    assert result.stdout.endswith("[... truncated: more than 10000 bytes]")
    assert len(result.stdout) < 10_100 and result.stderr == ""
    assert time.monotonic() - started < 3
    quiet = run_python("import sys\nsys.stderr.write('e' * 5000)", limits=SandboxLimits(max_output_bytes=100))
    assert quiet.status == "output_limit" and len(quiet.stderr) < 200


def test_killing_the_caller_mid_run_leaves_nothing() -> None:
    marker = _marker()
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", marker]
    program = f"import os, sys\nos.execv(sys.executable, {sleeper!r})"
    caller = subprocess.Popen([sys.executable, "-c", f"from rlvr.verify.sandbox import *\nrun_python({program!r})"])
    try:
        deadline = time.monotonic() + 20
        while not _showing(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _showing(marker), "the sandboxed program never started"
    finally:
        caller.kill()  # what VerifierPool does to a worker that overran its deadline
        caller.wait()
    deadline = time.monotonic() + 5
    while _showing(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _showing(marker) == []


# -- set-up errors ---------------------------------------------------------------------------------------------------


def test_refuses_to_run_without_namespaces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "unshare"
    fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox, "_tools", lambda: (shutil.which("setpriv"), str(fake)))
    with pytest.raises(SandboxUnavailableError, match="Operation not permitted.*network namespaces"):
        run_python("print('never runs')")


def test_other_interpreters_and_missing_ones(tmp_path: Path) -> None:
    other = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    result = run_python("import sys\nprint(sys.executable)", python=other)
    assert result.status == "ok" and result.stdout.strip() == other
    with pytest.raises(SandboxError):
        run_python("print(1)", python=str(tmp_path / "no-such-python"))
    assert sandbox_available(str(tmp_path / "no-such-python"))[0] is False


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="wall_time_s"):
        SandboxLimits(wall_time_s=0)
    with pytest.raises(ValueError, match="max_processes"):
        SandboxLimits(max_processes=-1)


def test_unprivileged_caller_uses_a_user_namespace() -> None:
    """Run as ``nobody`` (or as the unprivileged user running the suite): the sandbox goes through
    ``unshare --user``; the program keeps the caller's uid but still has no network, no capabilities and a
    read-only filesystem outside its tmpfs."""
    if not Path("/usr/bin/python3").exists():
        pytest.fail("needs /usr/bin/python3: a Python an unprivileged user can run (the suite's own may sit "
                    "in a directory only its owner can read)", pytrace=False)
    program = "import os, socket\nprint(os.getuid())\n" + textwrap.dedent("""
        for path in ("/etc/rlvr-x", "/var/tmp/x"):
            try:
                open(path, "w").write("x")
                print("wrote", path)
            except OSError as e:
                print("blocked", path, e.errno)
        print(sorted(name for _, name in socket.if_nameindex()))
    """)
    caller = (f"import sys; sys.path.insert(0, {str(Path(sandbox.__file__).parents[2])!r})\n"
              "from rlvr.verify import sandbox\n"
              f"print(sandbox.sandbox_available()[0]); r = sandbox.run_python({program!r}); print(r.status)\n"
              "print(r.stdout + r.stderr)")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    done = subprocess.run([*as_nobody, "/usr/bin/python3", "-I", "-c", caller], capture_output=True, text=True,
                          timeout=60, cwd="/")
    lines = done.stdout.splitlines()
    assert lines[:3] == ["True", "ok", "0"], done.stdout + done.stderr  # root inside its user namespace
    assert "blocked /etc/rlvr-x 30" in lines and "wrote /var/tmp/x" in lines and "['lo']" in lines
