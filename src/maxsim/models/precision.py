"""Encoding precision and backend: dtype names, what ``backend="auto"`` and ``dtype="auto"`` resolve to,
and the mixed mode.

Two knobs. ``backend`` ("auto", "torch", "onnx", "openvino") says where ``encode`` runs the backbone;
``dtype`` ("auto", "float32", "mixed", "bfloat16", "float16") its precision within that backend:

- ``dtype="auto"`` is the fastest precision measured to keep nDCG@10 within 0.001 of float32 on every
  collection of bench/RESULTS.md ("Encoding"): OpenVINO's bfloat16 inference hint ("mixed") with
  backend "auto" or "openvino" on a CPU with bfloat16 dot products (``amx_bf16`` / ``avx512_bf16``);
  float32 everywhere else, torch included (torch autocast misses the bound: 0.0016 on Cranfield).
- ``backend="auto"`` runs ``encode`` in OpenVINO where it is the fast path (precision "mixed" on a CPU
  with bfloat16 dot products, OpenVINO installed), in eval mode only: training and any other precision
  run in torch. ``backend="torch"`` always stays in torch.

``MAXSIM_DTYPE`` (a dtype name) and ``MAXSIM_BACKEND`` (a backend name) say what "auto" stands for:
``MAXSIM_DTYPE=float32`` pins the exact float32 torch path (the test suite does).

``"mixed"`` in torch is PyTorch's bfloat16 autocast:
the weights stay float32; matrix products (linear layers, attention) and the elementwise ops between
them run in bfloat16 with float32 accumulation inside the kernels (GEMM sums, the softmax of the
attention kernel, LayerNorm statistics); the model's outputs are cast back to float32. It is fast
only where bfloat16 is multiplied in hardware (AMX, AVX512-BF16, CUDA tensor cores); elsewhere it is
emulated and slower than float32, and choosing it logs a warning. ``"bfloat16"`` / ``"float16"`` cast
the whole model (weights included, torch only): a little faster, twice the error.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from pathlib import Path

from maxsim.errors import InvalidInputError

logger = logging.getLogger(__name__)

CAST_NAMES = ("float32", "bfloat16", "float16")  # precisions that hold the weights in that torch dtype
DTYPE_NAMES = ("auto", "mixed", *CAST_NAMES)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 dot products
CPUINFO = Path("/proc/cpuinfo")
GPU_DRIVERS = (Path("/proc/driver/nvidia/version"), Path("/dev/dxg"), Path("/dev/kfd"))  # NVIDIA, WSL2, ROCm


def resolve_dtype(dtype, device, backend: str = "torch") -> str:
    """A dtype name or torch dtype -> one of "mixed", "float32", "bfloat16", "float16" for ``backend``
    ("auto" -> ``$MAXSIM_DTYPE``, else "mixed" where ``fast_path`` holds, else "float32"); "mixed" on a
    device without bfloat16 units warns."""
    if not isinstance(dtype, str):  # a torch dtype
        if str(dtype).removeprefix("torch.") not in CAST_NAMES:
            raise InvalidInputError(f"dtype {dtype} is not supported; use one of {list(DTYPE_NAMES)}.")
        return str(dtype).removeprefix("torch.")
    if dtype not in DTYPE_NAMES:
        raise InvalidInputError(f"dtype {dtype!r} is not supported; use one of {list(DTYPE_NAMES)}.")
    if dtype == "auto":
        dtype = pinned("MAXSIM_DTYPE", DTYPE_NAMES[1:]) or ("mixed" if fast_path(backend, device) else "float32")
    if dtype == "mixed" and not fast_bfloat16(device):
        logger.warning("dtype='mixed' on %s: this device has no bfloat16 matrix units (AMX, AVX512-BF16, "
                       "CUDA bf16), so bfloat16 is emulated and slower than float32.", device)
    return dtype


def resolve_backend(backend: str) -> str:
    """The backend a model runs: ``backend``, or ``$MAXSIM_BACKEND`` for "auto" when set (checked)."""
    from maxsim.models.runtimes import BACKENDS

    if backend not in BACKENDS:
        raise InvalidInputError(f"backend {backend!r} is not known; use one of {list(BACKENDS)}.")
    return (pinned("MAXSIM_BACKEND", BACKENDS[1:]) or backend) if backend == "auto" else backend


def pinned(variable: str, allowed) -> str | None:
    """The value of the environment ``variable`` (one of ``allowed``), else None."""
    value = os.environ.get(variable) or None
    if value is not None and value not in allowed:
        raise InvalidInputError(f"{variable}={value!r} is not valid; use one of {list(allowed)} or unset it.")
    return value


def fast_path(backend: str, device) -> bool:
    """Whether OpenVINO's bfloat16 hint is the fast path that keeps quality for ``backend`` ("auto" or
    "openvino") on ``device``: a CPU with bfloat16 dot products, OpenVINO installed."""
    from maxsim.models.runtimes import missing_packages

    if backend not in ("auto", "openvino") or device_type(device) != "cpu":
        return False
    return fast_bfloat16(device) and not missing_packages("openvino")


def auto_backend(backend: str, precision: str, device) -> str | None:
    """The runtime ``backend="auto"`` runs ``encode`` in: "openvino" at precision "mixed" where
    ``fast_path`` holds, else None (torch)."""
    return "openvino" if backend == "auto" and precision == "mixed" and fast_path(backend, device) else None


def fast_bfloat16(device) -> bool:
    """Whether ``device`` (a torch device or its name) multiplies bfloat16 matrices in hardware (tensor
    cores, AMX, AVX512-BF16)."""
    if device_type(device) == "cuda":
        import torch

        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device_type(device) == "cpu" and bool(set(cpu_flags()) & set(BF16_CPU_FLAGS))


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, answered without importing torch on a Linux machine without GPU
    drivers (``GPU_DRIVERS``): a one-off search need not load torch to learn it runs on the CPU."""
    if sys.platform.startswith("linux") and not any(path.exists() for path in GPU_DRIVERS):
        return False
    import torch

    return torch.cuda.is_available()


def device_type(device) -> str:
    """"cpu", "cuda", ... of a torch device or a device name ("cuda:1"), without importing torch."""
    return str(device).partition(":")[0]


def weights_dtype(precision: str):
    """The torch dtype a model's weights are held in at ``precision``: float32 for "mixed" (autocast)."""
    import torch

    return getattr(torch, precision if precision in CAST_NAMES else "float32")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> tuple[str, ...]:
    """The CPU feature flags of /proc/cpuinfo (Linux); empty elsewhere.
    ``MAXSIM_CPU_FLAGS="a b"`` replaces them (to test or to force a choice)."""
    forced = os.environ.get("MAXSIM_CPU_FLAGS")
    if forced is not None:
        return tuple(forced.split())
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return tuple(line.partition(":")[2].split())


def autocast(precision: str, device):
    """The context the encoding forward pass runs in: bfloat16 autocast for "mixed", else nothing."""
    if precision != "mixed":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type(device), dtype=torch.bfloat16)
