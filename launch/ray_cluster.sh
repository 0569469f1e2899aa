#!/usr/bin/env bash
# Start, health-check and stop the Ray cluster that `rlvr train --ray-address` attaches to, one node at a
# time (launch/slurm.sbatch runs it on every node of a Slurm job; it works the same by hand or over ssh).
#
#   launch/ray_cluster.sh head [--port P] [--num-cpus N] [--num-gpus N] [--node-ip-address IP] [--temp-dir D]
#                              [--block] [-- RAY_START_ARGS...]
#       Start the head node (GCS on port P, default a free port) and print its address. Ports that Ray
#       would otherwise take at fixed numbers (client server, dashboard, dashboard agent) are picked free,
#       so several clusters can share a machine. Without --block, `ray start` returns once the node is up
#       and the head's address (IP:PORT) is printed on stdout; with --block it stays in the foreground
#       (for srun) and the node's processes die with it.
#   launch/ray_cluster.sh worker HEAD_ADDRESS [same options but --port]
#       Start a worker node that joins the head at HEAD_ADDRESS (IP:PORT).
#   launch/ray_cluster.sh wait N_NODES [--address ADDR] [--timeout S] [--watch PID]...
#       Poll the cluster's GCS until N_NODES nodes are alive (exit 0), or fail after S seconds (default
#       300) naming how many came up; also fail as soon as a --watch'ed process (e.g. the head's srun)
#       exits. ADDR defaults to $RAY_ADDRESS.
#   launch/ray_cluster.sh stop [--temp-dir D] [--grace S]
#       Stop the Ray processes of this machine that belong to the cluster using temp dir D (and all their
#       descendants: workers, agents, actors): a node started with --block is asked to stop itself
#       (SIGTERM to its ray_cluster.sh / `ray start`), then whatever is left gets SIGTERM, and SIGKILL
#       after S seconds (default 15). Unlike `ray stop`, other Ray instances on the machine, and srun
#       around a node, are left alone.
#
# Environment: RLVR_VENV (default ROOT/.venv; its `ray` and `python` are used, else the ones on PATH),
# RLVR_RAY_TMPDIR (the default --temp-dir, /tmp/rlvr_ray; keep it short: Ray's socket paths must fit in
# 107 bytes), RAY_ADDRESS (the default for `wait`), RAY_AUTH_MODE / RAY_AUTH_TOKEN (Ray's token
# authentication: every node and the driver need the same token; launch/slurm.sbatch sets one per job).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RLVR_VENV:-$ROOT/.venv}"
if [[ -x "$VENV/bin/ray" ]]; then RAY="$VENV/bin/ray"; PY="$VENV/bin/python"
else  # a ray on PATH: the python next to it has ray and psutil
  RAY="$(command -v ray || true)"; PY="$(dirname "${RAY:-.}")/python"
  [[ -x "$PY" ]] || PY="$(command -v python3 || true)"
fi
TEMP_DIR="${RLVR_RAY_TMPDIR:-/tmp/rlvr_ray}"
# `ray start --head` turns token authentication on when a token exists (~/.ray/auth_token), but a
# joining worker does so only when told; say it once for every node and `wait`.
if [[ -z "${RAY_AUTH_MODE:-}" ]] && { [[ -n "${RAY_AUTH_TOKEN:-}" ]] ||
     [[ -s "${RAY_AUTH_TOKEN_PATH:-${HOME:-/root}/.ray/auth_token}" ]]; }; then
  export RAY_AUTH_MODE=token
fi

die() { echo "ray_cluster.sh: error: $*" >&2; exit 1; }
usage() { sed -n '5,/^#$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
need_ray() { [[ -n "$RAY" && -x "$RAY" ]] || die "no ray executable (looked in $VENV/bin and on PATH; set RLVR_VENV)"; }

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# start head|worker ARGS...: parse the shared options, then run `ray start`.
start() {
  local role="$1"; shift
  local head_address="" port="" block=() extra=() opts=()
  if [[ "$role" == worker ]]; then
    [[ $# -gt 0 && "$1" != -* ]] || die "worker needs the head's address (IP:PORT)"
    head_address="$1"; shift
  fi
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --port) [[ "$role" == head ]] || die "--port is for the head"; port="$2"; shift 2 ;;
      --num-cpus|--num-gpus|--node-ip-address) opts+=("$1" "$2"); shift 2 ;;
      --temp-dir) TEMP_DIR="$2"; shift 2 ;;
      --block) block=(--block); shift ;;
      --) shift; extra=("$@"); break ;;
      *) die "unknown option for $role: $1 (pass ray start's own options after --)" ;;
    esac
  done
  need_ray
  mkdir -p "$TEMP_DIR"
  local node="${SLURMD_NODENAME:-$(hostname -s)}"  # Slurm's name for the node, where there is one
  opts+=(--temp-dir "$TEMP_DIR" --disable-usage-stats
         --dashboard-agent-listen-port "$(free_port)" "${block[@]}")
  if [[ "$role" == head ]]; then
    port="${port:-$(free_port)}"
    opts+=(--head --port "$port" --include-dashboard=false
           --ray-client-server-port "$(free_port)" --dashboard-port "$(free_port)")
    echo "ray_cluster.sh: starting the Ray head on $node, GCS port $port, temp dir $TEMP_DIR" >&2
  else
    opts+=(--address "$head_address")
    echo "ray_cluster.sh: starting a Ray worker on $node, joining $head_address, temp dir $TEMP_DIR" >&2
  fi
  if [[ ${#block[@]} -gt 0 ]]; then
    # Foreground (e.g. an srun task): SIGTERM/SIGINT go on to `ray start --block`, which drains the node
    # and stops its processes; a node stopped that way exits 0.
    "$RAY" start "${opts[@]}" "${extra[@]}" &
    RAY_START_PID=$!
    local rc=0
    trap 'STOPPING=1; kill -TERM "$RAY_START_PID" 2>/dev/null' TERM INT
    while :; do
      if wait "$RAY_START_PID"; then rc=0; else rc=$?; fi
      kill -0 "$RAY_START_PID" 2>/dev/null || break  # else `wait` was interrupted by the trap
    done
    [[ -n "${STOPPING:-}" ]] && rc=0
    exit "$rc"
  fi
  "$RAY" start "${opts[@]}" "${extra[@]}" >&2
  [[ "$role" == head ]] && cat "$TEMP_DIR/ray_current_cluster" && echo  # the address, on stdout
  return 0
}

wait_nodes() {
  local n="" address="${RAY_ADDRESS:-}" timeout=300 watch=()
  [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]] || die "wait needs the number of nodes to wait for"
  n="$1"; shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --address) address="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      --watch) watch+=("$2"); shift 2 ;;
      *) die "unknown option for wait: $1" ;;
    esac
  done
  [[ -n "$address" ]] || die "wait needs --address IP:PORT (or RAY_ADDRESS)"
  [[ -n "$PY" ]] || die "no python (set RLVR_VENV)"
  # `timeout` is a backstop: a GCS that accepts connections but never answers can hold one call ~30 s.
  exec timeout -k 5 "$(( ${timeout%.*} + 60 ))" "$PY" - "$address" "$n" "$timeout" "${watch[@]}" <<'PYTHON'
"""Count the alive nodes in the GCS's node table (no driver is started) until enough are up."""
import socket
import sys
import time

import psutil

address, want, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
watched = [int(pid) for pid in sys.argv[4:]]
deadline = time.monotonic() + timeout_s
host, _, port = address.rpartition(":")

import ray  # noqa: E402  (after the arguments: a bad call fails before the slow import)
from ray._raylet import GcsClient  # noqa: E402
from ray.core.generated import gcs_pb2  # noqa: E402

try:  # Ray >= 2.5x: use the cluster's token like `ray.init(address=...)` does
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
except ImportError:
    pass


def dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


alive, last_error, client = 0, "", None
while True:
    gone = [pid for pid in watched if dead(pid)]
    if gone:
        sys.exit(f"ray_cluster.sh: error: {alive} of {want} Ray node(s) alive at {address}, and the watched "
                 f"process(es) {gone} exited (a node failed to start? see its log above)")
    try:
        if client is None:
            # Connecting to a port nobody listens on blocks ~40 s in GcsClient; a plain socket says so at once.
            socket.create_connection((host, int(port)), timeout=2).close()
            client = GcsClient(address=address)
        nodes = client.get_all_node_info(timeout=5)
        alive = sum(node.state == gcs_pb2.GcsNodeInfo.ALIVE for node in nodes.values())
        last_error = ""
    except Exception as err:  # not up yet (connection refused, timeout): keep polling until the deadline
        client, last_error = None, f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    if alive >= want:
        print(f"ray_cluster.sh: {alive} Ray node(s) alive at {address} (ray {ray.__version__})", file=sys.stderr)
        sys.exit(0)
    if time.monotonic() > deadline:
        why = f"; last error: {last_error}" if last_error else ""
        sys.exit(f"ray_cluster.sh: error: only {alive} of {want} Ray node(s) alive at {address} after "
                 f"{timeout_s:g} s{why}")
    time.sleep(0.5)
PYTHON
}

stop_nodes() {
  local grace=15
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --temp-dir) TEMP_DIR="$2"; shift 2 ;;
      --grace) grace="$2"; shift 2 ;;
      *) die "unknown option for stop: $1" ;;
    esac
  done
  [[ -n "$PY" ]] || die "no python (set RLVR_VENV)"
  # The temp dir goes in the environment: a stop for it must not find itself (or another stop) by name.
  RLVR_STOP_TEMP_DIR="${TEMP_DIR%/}" exec "$PY" - "$grace" <<'PYTHON'
"""Terminate the Ray processes whose command line names the temp dir, and all their descendants."""
import os
import sys
import time

import psutil

temp_dir, grace_s = os.environ["RLVR_STOP_TEMP_DIR"], float(sys.argv[1])
spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}  # this command and its callers
WRAPPERS = {"srun", "timeout", "sbatch", "salloc", "ssh", "sudo"}  # ending srun would cancel its job step


def is_node_process(args: list[str]) -> bool:
    """A Ray process of this cluster's temp dir, or ray_cluster.sh head/worker around `ray start`."""
    if not any(a == temp_dir or a.endswith("=" + temp_dir) or temp_dir + "/" in a for a in args):
        return False
    if os.path.basename(args[0]) in WRAPPERS:
        return False
    script = next((i for i, a in enumerate(args[:2]) if a.endswith("ray_cluster.sh")), None)
    return script is None or args[script + 1 : script + 2] in (["head"], ["worker"])


def cluster_processes() -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid not in spared and is_node_process(proc.info["cmdline"] or [""]):
                for p in [proc, *proc.children(recursive=True)]:
                    found.setdefault(p.pid, p)
        except psutil.Error:
            continue
    return [p for pid, p in found.items() if pid not in spared and alive(p)]


def signal_all(procs: list[psutil.Process], kill: bool = False) -> None:
    for p in procs:
        try:
            p.kill() if kill else p.terminate()
        except psutil.NoSuchProcess:
            pass


def alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # an exited child its parent has not reaped yet is gone
    except psutil.NoSuchProcess:
        return False


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Poll until ``procs`` have exited or ``timeout_s`` passed; those still alive."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in procs if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def end(procs: list[psutil.Process], grace_s: float) -> tuple[int, list[psutil.Process]]:
    """SIGTERM ``procs``, SIGKILL those still alive after ``grace_s``; (how many were killed, survivors)."""
    signal_all(procs)
    left = wait_gone(procs, grace_s)
    signal_all(left, kill=True)
    return len(left), wait_gone(left, 10)


def is_gcs(p: psutil.Process) -> bool:
    try:
        return p.name() == "gcs_server"
    except psutil.Error:
        return False


def is_launcher(p: psutil.Process) -> bool:
    """``ray start`` or the ray_cluster.sh around it: on SIGTERM it drains its node and stops it."""
    try:
        args = p.cmdline()
    except psutil.Error:
        return False
    return any(a.endswith(("ray_cluster.sh", "/ray")) for a in args[:2])


procs = cluster_processes()
found, killed = len(procs), 0
launchers = {p.pid: p for p in procs if is_launcher(p)}
outermost = [p for p in launchers.values() if p.ppid() not in launchers]
if outermost:  # a node started with --block: let Ray stop it first, then stop what is left below
    signal_all(outermost)
    wait_gone(procs, grace_s)
for _ in range(2):  # a second pass catches workers started while the first one was stopping the node
    procs = cluster_processes()
    # The GCS goes last: the other processes talk to it while they shut down, and its own SIGTERM
    # shutdown can hang (Ray 2.60 waits on flushing its event recorder), so it gets a short grace.
    gcs = [p for p in procs if is_gcs(p)]
    n_killed, left = end([p for p in procs if p not in gcs], grace_s)
    n_gcs_killed, left_gcs = end(gcs, min(grace_s, 2.0))
    killed += n_killed + n_gcs_killed
    if left or left_gcs:
        sys.exit(f"ray_cluster.sh: error: process(es) of {temp_dir} survived SIGKILL: "
                 f"{[p.pid for p in left + left_gcs]}")
print(f"ray_cluster.sh: stopped {found} Ray process(es) of {temp_dir} on {os.uname().nodename}"
      f"{f' ({killed} needed SIGKILL)' if killed else ''}", file=sys.stderr)
PYTHON
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  head|worker) start "$cmd" "$@" ;;
  wait) wait_nodes "$@" ;;
  stop) stop_nodes "$@" ;;
  *) usage ;;
esac
