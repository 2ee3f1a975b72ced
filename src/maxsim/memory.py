"""Resident memory of mapped files: a file read once through a memory map (model weights converted
by OpenVINO, index vectors copied into a scan buffer) stays resident while mapped; these pages can be
given back without unmapping.

Who calls it: ``maxsim.models.backends`` (the ONNX export's weights after OpenVINO compiles them,
the torch weights while OpenVINO runs the model) and ``maxsim.index.exact`` (float16 vectors: the
scan reads its int8 or bfloat16 copy, re-scores read a few documents' rows and give them back).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
from pathlib import Path

import numpy as np

MADV_DONTNEED = 4


def release_file_pages(path: Path | str) -> int:
    """Drop this process's resident pages of mappings of ``path`` (Linux ``madvise`` MADV_DONTNEED;
    elsewhere a no-op): read-only ones, and private writable ones none of whose pages was written
    (torch maps safetensors weights so). The pages come back from the file if read again, so nothing
    changes but memory. Returns the bytes released."""
    target = str(Path(path).resolve())
    return release_mappings(lambda name: name == target)


def release_mappings(chosen) -> int:
    """``release_file_pages`` for every file mapping whose path ``chosen(path)`` accepts."""
    try:
        smaps = open("/proc/self/smaps").read().splitlines()
        madvise = _madvise()
    except (OSError, AttributeError):
        return 0
    released = 0
    for start, end, perms, written in _mappings(smaps, chosen):
        if "w" not in perms or written == 0:  # a written page of a private map exists only in memory
            released += (end - start) if madvise(start, end - start, MADV_DONTNEED) == 0 else 0
    return released


def _mappings(smaps: list[str], chosen):
    """(start, end, permissions, Anonymous kB) of each mapping whose file ``chosen`` accepts."""
    current = None
    for line in smaps:
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and "-" in fields[0] and not fields[0].endswith(":"):
            if current:
                yield current
            current = None
            if len(fields) == 6 and chosen(fields[5]):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                current = (start, end, fields[1], -1)
        elif current and fields[0] == "Anonymous:":  # pages written to a private map (copies)
            current = (*current[:3], int(fields[1]))
    if current:
        yield current


def release_map(array) -> int:
    """``release_file_pages`` for the pages of one read-only ``np.memmap`` (its own range: no search
    of the process's maps, a few microseconds). Anything else is left alone (0): anonymous memory
    would lose its contents."""
    if not isinstance(array, np.memmap) or array.mode != "r" or not array.nbytes:
        return 0
    start = array.ctypes.data - array.ctypes.data % mmap.PAGESIZE
    length = array.ctypes.data + array.nbytes - start
    return length if _madvise()(start, length, MADV_DONTNEED) == 0 else 0


@functools.lru_cache(maxsize=1)
def _madvise():
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise
