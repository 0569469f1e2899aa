"""The tiny recipe on a two-"node" Ray cluster (two raylets on this machine, 2 CPUs each): rlvr attaches
with --ray-address, reserves its 2 engines and 2 learner ranks (one CPU each) with a placement group and
they land on both nodes, as the run's log shows; a recipe that does not fit the cluster fails at once,
naming what is missing."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from tests.conftest import DEFAULT_RECIPE


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_workers_land_on_both_nodes(cluster: Cluster, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), "--ray-address", cluster.address,
           "run.steps=2", f"run.output_dir={tmp_path}", "rollout.num_engines=2", "learner.num_ranks=2",
           "eval.data=[]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ready = next(line for line in proc.stdout.splitlines() if line.startswith("ready in "))
    match = re.search(r"learner rank\(s\) \(.*?\) on (\[.*?\]), 2 rollout engine\(s\) on (\[.*?\])", ready)
    assert match, ready
    learner_nodes, engine_nodes = ast.literal_eval(match.group(1)), ast.literal_eval(match.group(2))
    assert len(set(learner_nodes) | set(engine_nodes)) == 2, ready  # both raylets host workers
    assert "placement: CPU: 4 actor(s) x 1 CPU (2 learner rank(s), 2 engine(s))" in proc.stdout
    assert "step 2/2" in proc.stdout


@pytest.mark.parametrize("overrides, message", [
    (["resources.nodes=3"], "resources.nodes=3, but the Ray cluster has 2 alive node(s)"),
    (["resources.cpus_per_worker=2", "rollout.num_engines=2", "learner.num_ranks=2"],
     "the run needs 8 CPUs (CPU: 4 actor(s) x 2 CPU"),
    (["rollout.tensor_parallel_size=2"], "rollout.tensor_parallel_size=2 needs GPUs; this cluster has none"),
])
def test_a_recipe_that_does_not_fit_fails_before_any_worker_starts(
        cluster: Cluster, tmp_path: Path, overrides: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "rlvr.cli", "train", str(DEFAULT_RECIPE), "--ray-address", cluster.address,
           f"run.output_dir={tmp_path}", *overrides]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "ready in" not in proc.stdout and time.monotonic() - t0 < 120


def test_without_an_address_a_run_starts_its_own_instance_even_beside_a_live_cluster(cluster: Cluster) -> None:
    # The fixture's cluster recorded its address in /tmp/ray/ray_current_cluster, where a bare
    # `ray.init()` would find it and attach (then refuse num_cpus): rlvr starts a local instance instead.
    code = ("import ray; from rlvr.remote import init_ray; init_ray(None, 1, 1); "
            "print(ray.get_runtime_context().gcs_address, ray.cluster_resources()['CPU']); ray.shutdown()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    gcs, cpus = proc.stdout.split()[-2:]
    assert gcs != cluster.address and float(cpus) == 1.0, proc.stdout
