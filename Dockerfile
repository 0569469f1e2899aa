# rlvr GPU image: CUDA vLLM + DeepSpeed + Ray, for multi-GPU nodes and Ray/Slurm clusters.
#   docker build -t rlvr .
#   docker run --gpus all --shm-size 32g -v $PWD/runs:/workspace/rlvr/runs rlvr \
#       rlvr train recipes/zero_math_7b.yaml
# The vllm wheel brings its matching CUDA torch build; the CPU path (launch/local.sh) does not use this image.
FROM nvidia/cuda:12.8.1-devel-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv python3.11-dev git build-essential ninja-build \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /workspace/rlvr
# Dependencies first (cached layer), then the source.
COPY pyproject.toml README.md ./
COPY rlvr/__init__.py rlvr/__init__.py
RUN pip install --upgrade pip && pip install -e ".[gpu,dev,loggers]"
COPY . .
RUN pip install -e ".[gpu,dev,loggers]" --no-deps && rlvr validate recipes/*.yaml

CMD ["rlvr", "--help"]
