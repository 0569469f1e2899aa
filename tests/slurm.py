"""A real single-machine Slurm for tests: ``slurmctld`` and ``slurmd`` from the distribution's packages
(Debian: ``apt-get install slurmctld slurmd slurm-client``), run in the foreground as children of the
test process with their own configuration, ports, state and logs in a temporary directory, so they
cannot clash with another Slurm (or another test run) on the machine. Several nodes are several
``slurmd -N NAME`` on this machine (Debian's Slurm allows it), so multi-node jobs run too.

Authentication is ``auth/none`` where the installed Slurm still ships it (22.05 does); otherwise a
private ``munged`` is started with its own key, socket and pid file. Processes are tracked by
``proctrack/linuxproc`` and tasks are not confined (``task/none``): cgroups are rarely usable inside a
container. There is no slurmdbd, so finished jobs stay visible to ``scontrol show job`` (``MinJobAge``
is a day).

Use the ``slurm`` fixture (``from tests.slurm import slurm_fixture``), then ``submit``, ``job_state``,
``wait_state``, ``cancel`` and ``output``.
"""

from __future__ import annotations

import getpass
import glob
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil
import pytest

INSTALL_HINT = ("Slurm is not installed: `apt-get install -y --no-install-recommends slurmctld slurmd "
                "slurm-client munge` (launch/local.sh test does this itself when run as root)")
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE"}


def installed() -> bool:
    return all(shutil.which(cmd) for cmd in ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "scancel"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _has_auth_none() -> bool:
    patterns = ["/usr/lib/*/slurm-wlm/auth_none.so", "/usr/lib*/slurm*/auth_none.so",
                "/usr/local/lib*/slurm/auth_none.so"]
    return any(glob.glob(pattern) for pattern in patterns)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} is missing)"


class Slurm:
    """One controller and ``nodes`` compute nodes, all on this machine (one ``slurmd -N NAME`` each, the
    whole machine's CPUs and a share of its memory each), with their own configuration."""

    def __init__(self, root: Path, nodes: int = 1) -> None:
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.nodes = [self.host] if nodes == 1 else [f"{self.host}{i}" for i in range(1, nodes + 1)]
        self.conf = root / "slurm.conf"
        # A test run inside a Slurm job must not pass that job's settings on.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        self.env["SLURM_CONF"] = str(self.conf)
        self.daemons: dict[str, subprocess.Popen] = {}

    # --- set-up and tear-down -------------------------------------------------------------------
    def start(self, timeout_s: float = 60) -> None:
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        auth = self._auth_settings()
        machine = self.run("slurmd", "-C").stdout.splitlines()[0]  # this machine as slurmd sees it
        memory = int(re.search(r"RealMemory=(\d+)", machine).group(1)) // len(self.nodes)
        machine = re.sub(r"RealMemory=\d+", f"RealMemory={memory}", machine.split(" ", 1)[1])
        node_lines = [f"NodeName={node} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={_free_port()} {machine}"
                      for node in self.nodes]
        user = getpass.getuser()
        self.conf.write_text("\n".join([
            "ClusterName=rlvrtest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            *auth,
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool' / '%n'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd-%n.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "MinJobAge=86400",  # no slurmdbd: keep finished jobs in `scontrol show job`
            "KillWait=10",      # SIGTERM -> SIGKILL when a job is cancelled or ends
            "InactiveLimit=0",
            # Job ids (and so the sbatch script's /tmp/ray_<job id>) differ between test runs on one machine.
            f"FirstJobId={random.randint(100_000, 9_000_000)}",
            *node_lines,
            f"PartitionName=test Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        daemons = {"slurmctld": ["slurmctld", "-D", "-i"]}
        daemons |= {f"slurmd-{node}": ["slurmd", "-D", "-N", node] for node in self.nodes}
        for name, args in daemons.items():
            with open(self.root / "log" / f"{name}.out", "w") as out:
                self.daemons[name] = subprocess.Popen(args, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                      start_new_session=True)
        deadline = time.monotonic() + timeout_s
        states: list[str] = []
        while time.monotonic() < deadline:
            self._check_daemons()
            proc = self.run("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=15)
            states = proc.stdout.split()
            if proc.returncode == 0 and states == ["idle"] * len(self.nodes):
                return
            time.sleep(0.3)
        raise RuntimeError(f"Slurm nodes {self.nodes} not idle after {timeout_s} s ({states})\n{self._logs()}")

    def _auth_settings(self) -> list[str]:
        if _has_auth_none():
            return ["AuthType=auth/none", "CredType=cred/none"]
        # Newer Slurm dropped auth/none: a private munged with its own key, socket and pid file.
        munge = self.root / "munge"
        munge.mkdir(mode=0o700, exist_ok=True)
        key, sock = munge / "munge.key", munge / "munge.sock"
        self.run("mungekey", "--create", "--keyfile", str(key))
        args = ["munged", "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
                f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}"]
        self.daemons["munged"] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                  start_new_session=True)
        deadline = time.monotonic() + 15
        while not sock.exists():
            if time.monotonic() > deadline or self.daemons["munged"].poll() is not None:
                raise RuntimeError(f"munged did not start:\n{_tail(munge / 'munged.log')}")
            time.sleep(0.1)
        return ["AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}"]

    def _check_daemons(self) -> None:
        for name, proc in self.daemons.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self._logs()}")

    def _logs(self) -> str:
        return "\n".join(f"--- {path.name}:\n{_tail(path)}" for path in sorted((self.root / "log").glob("*")))

    def stop(self, timeout_s: float = 60) -> None:
        """Cancel every job, wait until none is left running, then stop the daemons (checked)."""
        if all(proc.poll() is None for proc in self.daemons.values()):
            self.run("scancel", "--user", getpass.getuser(), check=False)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                busy = self.run("squeue", "-h", "-t", "RUNNING,COMPLETING,CONFIGURING,PENDING", "-o", "%i",
                                check=False).stdout.split()
                if not busy:
                    break
                time.sleep(0.3)
        order = sorted(self.daemons, key=lambda name: ["slurmd", "slurmctld", "munged"].index(name.split("-")[0]))
        for name in order:
            proc = self.daemons[name]
            if proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        left = [name for name, proc in self.daemons.items() if proc.poll() is None]
        assert not left, f"Slurm daemons still running: {left}"

    # --- using it -----------------------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, timeout: float = 30, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(args, env={**self.env, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited with {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def submit(self, script: Path, args: Iterable[str] = (), env: dict[str, str] | None = None,
               options: Iterable[str] = (), cwd: Path | None = None) -> int:
        """``sbatch [options] script args``; the job id. ``env`` is added to the exported environment."""
        proc = self.run("sbatch", "--parsable", *options, str(script), *args, env=env, cwd=cwd)
        return int(proc.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """The fields of ``scontrol show job`` (JobState, ExitCode, StdOut, ...)."""
        line = self.run("scontrol", "-o", "show", "job", str(job_id)).stdout.strip()
        return {m.group(1): m.group(2) for m in re.finditer(r"(\S+?)=(.*?)(?= \S+?=|$)", line)}

    def job_state(self, job_id: int) -> str:
        return self.job(job_id)["JobState"]

    def output(self, job_id: int) -> str:
        path = Path(self.job(job_id)["StdOut"])
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_state(self, job_id: int, states: Iterable[str], timeout: float) -> str:
        """Poll until the job is in one of ``states``; its state. Fails with the job's output tail."""
        states = set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = self.job_state(job_id)
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {state}, not {sorted(states)}, after {timeout:.0f} s; "
                                     f"its output ends:\n{self.output(job_id)[-4000:]}")
            time.sleep(0.5)

    def cancel(self, job_id: int, *options: str) -> None:
        self.run("scancel", *options, str(job_id))


def job_processes(job_id: int) -> list[str]:
    """Live processes started for Slurm job ``job_id`` (their environment says so): "pid name"."""
    want = str(job_id)
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get("SLURM_JOB_ID") == want and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {proc.info['name']}")
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module", name="slurm")
def slurm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    """``slurm``: a running single-machine Slurm with two nodes for a test module. Where Slurm is not installed
    the tests fail with how to install it (never a silent skip); ``-m "not slurm"`` leaves them out on
    purpose. Import ``slurm_fixture`` into the test module to use it."""
    if not installed():
        pytest.fail(f"{INSTALL_HINT}; or leave the Slurm tests out with -m 'not slurm'", pytrace=False)
    cluster = Slurm(tmp_path_factory.mktemp("slurm"), nodes=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
