"""Encoding precision: dtype names, what ``dtype="auto"`` picks on this machine, and the mixed mode.

``"mixed"`` (what ``"auto"`` picks where bfloat16 matrix units exist) keeps the weights, the residual
stream, LayerNorm, softmax, GELU and every accumulation in float32; only the GEMMs of linear layers
run on bfloat16-rounded inputs (float32 accumulation inside the kernel), their outputs come back as
float32 and the bias is added in float32. ``"bfloat16"`` / ``"float16"`` cast the whole model.
"""

from __future__ import annotations

import functools
import os
import weakref
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

CAST_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_NAMES = ("auto", "mixed", *CAST_DTYPES)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bfloat16 dot products
CPUINFO = Path("/proc/cpuinfo")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> str:
    """A dtype name or torch dtype -> one of "mixed", "float32", "bfloat16", "float16".

    "auto" -> "mixed" on a CUDA GPU with bfloat16 support or a CPU with AMX / AVX512-BF16,
    "float32" everywhere else (older CPUs, Apple, ...), where bfloat16 GEMMs would be emulated."""
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in CAST_DTYPES.items()}
        if dtype not in names:
            raise ValueError(f"dtype {dtype} is not supported; use one of {list(DTYPE_NAMES)}.")
        return names[dtype]
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {list(DTYPE_NAMES)}.")
    if dtype != "auto":
        return dtype
    return "mixed" if fast_bfloat16(torch.device(device)) else "float32"


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


class BFloat16Matmuls(TorchFunctionMode):
    """Inside ``with BFloat16Matmuls():``, ``F.linear`` on float32 inputs runs as a bfloat16 GEMM and
    returns float32 (bias added in float32); every other op is untouched. Weights are cast once and
    cached per (tensor, version), so an in-place update (an optimizer step) refreshes the copy."""

    def __init__(self, cache: dict):
        super().__init__()
        self.cache = cache

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear and args[0].dtype == torch.float32:
            return self.linear(*args, **kwargs)
        return func(*args, **kwargs)

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.nn.functional.linear(x.to(torch.bfloat16), self.bfloat16(weight)).float()
        return y if bias is None else y.add_(bias)

    def bfloat16(self, weight: torch.Tensor) -> torch.Tensor:
        ref, version, copy = self.cache.get(id(weight), (None, None, None))
        if ref is None or ref() is not weight or version != weight._version:
            copy = weight.detach().to(torch.bfloat16)
            self.cache[id(weight)] = (weakref.ref(weight), weight._version, copy)
        return copy
