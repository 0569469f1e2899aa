# rlvr GPU image: CUDA vLLM + DeepSpeed + Ray, for multi-GPU nodes and Ray/Slurm clusters.
#   docker build -t rlvr .
#   docker run --gpus all --shm-size 32g -v $PWD/runs:/workspace/rlvr/runs rlvr \
#       rlvr train recipes/zero_math_7b.yaml
# The stack is pinned by pyproject's `gpu` extra: vLLM 0.32.x, which brings torch 2.13 in PyPI's CUDA 13
# build. The base image matches it (CUDA 13.0 toolkit for DeepSpeed's JIT-built ops), so the host needs an
# NVIDIA driver >= 580 (CUDA 13's minimum; `nvidia-smi` shows the driver's CUDA version, which must be >= 13.0).
# Moving the vLLM pin moves this image too (README, "Moving the vLLM pin"). The CPU path (launch/local.sh)
# does not use this image.
FROM nvidia/cuda:13.0.1-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3.12 python3.12-venv python3.12-dev git build-essential ninja-build \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /workspace/rlvr
# Dependencies first (cached layer), then the source.
COPY pyproject.toml README.md ./
COPY rlvr/__init__.py rlvr/__init__.py
RUN pip install --upgrade pip && pip install -e ".[gpu,dev,loggers]"
COPY . .
# The image must hold the vLLM series rlvr is written against, with a CUDA 13 torch.
RUN pip install -e ".[gpu,dev,loggers]" --no-deps \
    && python -c "import torch; from rlvr.vllm_compat import check_vllm_version; check_vllm_version(); \
assert torch.version.cuda and torch.version.cuda.startswith('13.'), f'torch {torch.__version__} is built for CUDA {torch.version.cuda}, the image for 13.0'" \
    && rlvr validate recipes/*.yaml

CMD ["rlvr", "--help"]
