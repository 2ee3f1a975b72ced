"""Encoding precision: dtype names, what ``dtype="auto"`` picks, and the mixed mode.

``"auto"`` picks the fastest path measured to keep nDCG@10 within 0.001 of float32 on every
collection of tests/fixtures/data (bench/RESULTS.md, "Encoding"): on a CPU with bfloat16 dot
products (``amx_bf16`` / ``avx512_bf16``) and OpenVINO installed (a core dependency), the backbone
runs in OpenVINO at its bfloat16 inference hint (within 0.0006 everywhere, ~3x float32) while the
model is in eval mode; everywhere else, and while training, the float32 torch path. ``"mixed"``
(torch autocast) costs 0.0016 on Cranfield, so it stays an explicit choice.
``MAXSIM_DTYPE=float32`` (or any other dtype name) makes "auto" mean that dtype on the torch path:
pin the exact path for reproducibility (the test suite does).

``"mixed"`` is PyTorch's bfloat16 autocast:
the weights stay float32; matrix products (linear layers, attention) and the elementwise ops between
them run in bfloat16 with float32 accumulation inside the kernels (GEMM sums, the softmax of the
attention kernel, LayerNorm statistics); the model's outputs are cast back to float32. On this
project's CPU (AVX512-BF16) it is 2-3x faster than float32 at a max abs difference of ~3e-3 per
vector component. It is fast only where bfloat16 is multiplied in hardware (AMX, AVX512-BF16, CUDA
tensor cores); elsewhere it is emulated and slower than float32, and choosing it logs a warning.
``"bfloat16"`` / ``"float16"`` cast the whole model (weights included): a little faster, twice the error.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import torch

from maxsim.errors import InvalidInputError

logger = logging.getLogger(__name__)

CAST_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_NAMES = ("auto", "mixed", *CAST_DTYPES)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 dot products
CPUINFO = Path("/proc/cpuinfo")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> str:
    """A dtype name or torch dtype -> one of "mixed", "float32", "bfloat16", "float16" on the torch
    path ("auto" -> ``$MAXSIM_DTYPE`` or "float32"; see ``auto_backend`` for the rest of "auto");
    "mixed" on a device without bfloat16 units warns."""
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in CAST_DTYPES.items()}
        if dtype not in names:
            raise InvalidInputError(f"dtype {dtype} is not supported; use one of {list(DTYPE_NAMES)}.")
        return names[dtype]
    if dtype not in DTYPE_NAMES:
        raise InvalidInputError(f"dtype {dtype!r} is not supported; use one of {list(DTYPE_NAMES)}.")
    if dtype == "auto":
        dtype = pinned_dtype() or "float32"
    if dtype == "mixed" and not fast_bfloat16(torch.device(device)):
        logger.warning("dtype='mixed' on %s: this device has no bfloat16 matrix units (AMX, AVX512-BF16, "
                       "CUDA bf16), so bfloat16 is emulated and slower than float32.", device)
    return dtype


def pinned_dtype() -> str | None:
    """``$MAXSIM_DTYPE``: the dtype "auto" stands for when set (checked), else None."""
    value = os.environ.get("MAXSIM_DTYPE") or None
    if value is not None and value not in DTYPE_NAMES[1:]:
        raise InvalidInputError(f"MAXSIM_DTYPE={value!r} is not a dtype; use one of {list(DTYPE_NAMES[1:])} "
                                "or unset it.")
    return value


def auto_backend(device: torch.device) -> str | None:
    """The inference backend "auto" runs the backbone in on ``device``: "openvino" (bfloat16 hint) on a
    CPU with bfloat16 dot products when OpenVINO is installed and ``$MAXSIM_DTYPE`` is unset, else None
    (the torch path)."""
    from maxsim.models.backends import missing_packages

    if pinned_dtype() or device.type != "cpu" or not fast_bfloat16(device):
        return None
    return None if missing_packages("openvino") else "openvino"


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (tensor cores, AMX, AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and bool(set(cpu_flags()) & set(BF16_CPU_FLAGS))


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


def autocast(precision: str, device: torch.device):
    """The context the encoding forward pass runs in: bfloat16 autocast for "mixed", else nothing."""
    if precision != "mixed":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
