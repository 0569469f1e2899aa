"""The launchers for clusters: launch/ray_cluster.sh on this machine (two raylets), and launch/slurm.sbatch
under a real Slurm with two nodes on this machine (tests/slurm.py): the tiny recipe runs to COMPLETED
through `sbatch`, the preemption signal sent to the batch shell ends the run cleanly (exit 75, requeue on
request), and a cancelled job leaves no process behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlvr.tracking import read_metrics
from tests.conftest import DEFAULT_RECIPE, ROOT, processes_with, wait_for
from tests.slurm import Slurm, job_processes, slurm_fixture  # noqa: F401  (the `slurm` fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SBATCH = ROOT / "launch" / "slurm.sbatch"
CLUSTER = ROOT / "launch" / "ray_cluster.sh"
SHORT = ["eval.data=[]", "rollout.prompts_per_step=16"]


def _submit(slurm: Slurm, tmp_path: Path, steps: int, options: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> tuple[int, Path]:
    run_dir = tmp_path / "runs"
    job = slurm.submit(SBATCH, [str(DEFAULT_RECIPE), f"run.steps={steps}", f"run.output_dir={run_dir}", *SHORT],
                       options=[f"--output={tmp_path / 'job-%j.out'}", "--job-name=rlvr-test", *options],
                       env=env, cwd=ROOT)
    return job, run_dir


def _stray(job: int, run_dir: Path) -> list[str]:
    """Processes the job left: by its environment, its Ray temp dir or its run directory."""
    pids = processes_with(f"/tmp/ray_{job}") + processes_with(str(run_dir))
    return job_processes(job) + [str(pid) for pid in pids]


@pytest.fixture
def cleanup_ray_dir() -> Iterator[list[int]]:
    jobs: list[int] = []
    yield jobs
    for job in jobs:
        shutil.rmtree(f"/tmp/ray_{job}", ignore_errors=True)


def test_sbatch_runs_the_tiny_recipe_on_two_nodes(slurm: Slurm, tmp_path: Path, cleanup_ray_dir: list[int]) -> None:
    job, run_dir = _submit(slurm, tmp_path, steps=2, options=("--nodes=2",))
    cleanup_ray_dir.append(job)
    state = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=300)
    out = slurm.output(job)
    info = slurm.job(job)
    assert state == "COMPLETED" and info["ExitCode"] == "0:0", out[-4000:]
    # A head on the first node, a worker on the second, both alive before rlvr starts; rlvr attached to that
    # cluster (the address the script started), not to a local instance of its own.
    address = re.search(r"Ray head at (\S+:\d+), temp dir /tmp/ray_(\d+)", out)
    assert address and address.group(2) == str(job), out[-4000:]
    assert "starting a Ray worker on" in out and "2 Ray node(s) alive" in out, out[-4000:]
    assert f"--ray-address {address.group(1)}" in out, out[-4000:]
    assert f"Ray: attached to the cluster at {address.group(1)}" in out, out[-4000:]
    assert "step 2/2" in out and "rlvr train exited with 0" in out, out[-4000:]
    (run,) = [p for p in run_dir.iterdir() if p.is_dir()]
    assert [r["step"] for r in read_metrics(run, "train")] == [1, 2]
    assert (run / "checkpoints" / "final" / "model.safetensors").is_file()
    assert f"stopping Ray on {' '.join(slurm.nodes)}" in out and "Ray process(es) of /tmp/ray_" in out, out[-4000:]
    assert wait_for(lambda: not _stray(job, run_dir), 30), _stray(job, run_dir)


def test_preemption_signal_stops_the_run_cleanly(slurm: Slurm, tmp_path: Path,
                                                 cleanup_ray_dir: list[int]) -> None:
    job, run_dir = _submit(slurm, tmp_path, steps=200)
    cleanup_ray_dir.append(job)
    slurm.wait_state(job, {"RUNNING"}, timeout=60)
    assert wait_for(lambda: re.search(r"^step 1/", slurm.output(job), re.M) is not None, 300), slurm.output(job)[-4000:]
    # What Slurm does before a time limit with --signal=B:USR1@120: signal the batch shell only.
    slurm.cancel(job, "--batch", "--signal=USR1")
    signalled = time.monotonic()
    state = slurm.wait_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=180)
    ended_s = time.monotonic() - signalled
    out = slurm.output(job)
    assert "got SIGUSR1, forwarding it to rlvr train" in out, out[-4000:]
    assert "step 200/" not in out
    # rlvr train's contract: stop its workers cleanly and exit 75 ("preempted, requeue me"); the job exits with it.
    assert "rlvr train exited with 75" in out, out[-4000:]
    assert list(run_dir.glob("*/checkpoints/*")), "no checkpoint written on preemption"
    assert state == "FAILED" and slurm.job(job)["ExitCode"] == "75:0", (state, slurm.job(job)["ExitCode"])
    assert ended_s < 120, ended_s
    assert wait_for(lambda: not _stray(job, run_dir), 30), _stray(job, run_dir)


def test_preempted_before_training_requeues_then_cancel_leaves_nothing(slurm: Slurm, tmp_path: Path,
                                                                       cleanup_ray_dir: list[int]) -> None:
    """RLVR_REQUEUE=1: the job puts itself back in the queue when stopped for preemption (here while its Ray
    cluster is still starting); a plain `scancel` of the requeued run then ends everything."""
    job, run_dir = _submit(slurm, tmp_path, steps=2, options=("--requeue", "--open-mode=append"),
                           env={"RLVR_REQUEUE": "1"})
    cleanup_ray_dir.append(job)
    assert wait_for(lambda: "Ray head at" in slurm.output(job), 120), slurm.output(job)[-4000:]
    slurm.cancel(job, "--batch", "--signal=USR1")
    assert wait_for(lambda: slurm.job(job)["Restarts"] == "1", 120), (slurm.job(job), slurm.output(job)[-4000:])
    out = slurm.output(job)
    assert "got SIGUSR1 before rlvr train started: stopping" in out and f"requeueing job {job}" in out, out[-4000:]
    assert "slurm.sbatch: exit 75" in out, out[-4000:]
    slurm.cancel(job)  # pending again, or already running its second time: either way it ends now
    assert slurm.wait_state(job, {"CANCELLED"}, timeout=120) == "CANCELLED"
    assert wait_for(lambda: not _stray(job, run_dir), 60), _stray(job, run_dir)


def test_scancel_while_engines_start_leaves_nothing(slurm: Slurm, tmp_path: Path,
                                                    cleanup_ray_dir: list[int]) -> None:
    """A plain `scancel` (SIGTERM to every process of the job, SIGKILL after KillWait) mid-start-up."""
    job, run_dir = _submit(slurm, tmp_path, steps=200)
    cleanup_ray_dir.append(job)
    assert wait_for(lambda: "placement: " in slurm.output(job), 180), slurm.output(job)[-4000:]
    slurm.cancel(job)
    assert slurm.wait_state(job, {"CANCELLED"}, timeout=120) == "CANCELLED"
    assert wait_for(lambda: not _stray(job, run_dir), 60), _stray(job, run_dir)
    assert "step 1/" not in slurm.output(job)


def test_ray_cluster_script_starts_waits_and_stops(tmp_path: Path) -> None:
    """A head and a worker raylet on this machine (each with its own temp dir), health-checked and stopped."""
    tag = f"/tmp/rc{os.getpid()}"  # short: Ray's socket paths must fit in 107 bytes
    head_dir, worker_dir = f"{tag}h", f"{tag}w"
    env = {**os.environ, "RLVR_RAY_TMPDIR": head_dir}
    procs: list[subprocess.Popen] = []
    try:
        head = subprocess.run([str(CLUSTER), "head", "--num-cpus", "1"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert head.returncode == 0, head.stderr[-3000:]
        address = head.stdout.strip()
        assert re.fullmatch(r"\S+:\d+", address), head.stdout
        # The worker as launch/slurm.sbatch runs it: in the foreground with --block.
        log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen([str(CLUSTER), "worker", address, "--num-cpus", "1", "--temp-dir", worker_dir,
                                       "--block"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        log.close()
        ok = subprocess.run([str(CLUSTER), "wait", "2", "--address", address, "--timeout", "120",
                             "--watch", str(procs[0].pid)], env=env, capture_output=True, text=True, timeout=150)
        worker_log = (tmp_path / "worker.log").read_text()
        assert ok.returncode == 0 and "2 Ray node(s) alive" in ok.stderr, ok.stderr + worker_log

        t0 = time.monotonic()
        short = subprocess.run([str(CLUSTER), "wait", "3", "--address", address, "--timeout", "5"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert short.returncode == 1 and time.monotonic() - t0 < 30, (short.returncode, short.stderr)
        assert f"only 2 of 3 Ray node(s) alive at {address} after 5 s" in short.stderr, short.stderr

        # A node that fails to come up is reported at once, not after the deadline.
        t0 = time.monotonic()
        dead = subprocess.Popen(["true"])
        dead.wait(timeout=10)
        fast = subprocess.run([str(CLUSTER), "wait", "3", "--address", address, "--timeout", "100", "--watch",
                               str(dead.pid)], env=env, capture_output=True, text=True, timeout=60)
        assert fast.returncode == 1 and "exited" in fast.stderr and time.monotonic() - t0 < 30, fast.stderr

        for temp_dir in (worker_dir, head_dir):
            stop = subprocess.run([str(CLUSTER), "stop", "--temp-dir", temp_dir], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert stop.returncode == 0 and f"Ray process(es) of {temp_dir}" in stop.stderr, stop.stderr
            assert not processes_with(temp_dir + "/"), processes_with(temp_dir + "/")
        assert procs[0].wait(timeout=30) == 0  # the --block worker ends cleanly when its node is stopped
        assert wait_for(lambda: not processes_with(tag), 10), processes_with(tag)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for temp_dir in (head_dir, worker_dir):
            subprocess.run([str(CLUSTER), "stop", "--temp-dir", temp_dir], env=env, capture_output=True, timeout=120)
            shutil.rmtree(temp_dir, ignore_errors=True)
