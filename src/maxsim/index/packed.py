"""MaxSim over packed token matrices: documents stored back to back in one (n_tokens, dim) array.

``maxsim.scoring.maxsim`` takes one array per document and pads them into a batch; an index keeps
each segment's vectors contiguous, so one GEMM of all tokens against all query vectors plus a
segment max (``torch.segment_reduce``) computes the same scores without padding or per-document
tensors (~10x faster for single queries here). ``tests/test_index_exact.py`` checks it against
``maxsim.scoring.maxsim``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import threading
import time
import warnings

import numpy as np
import torch

from maxsim.cache import cache_root
from maxsim.errors import InvalidInputError
from maxsim.index.packed_numpy import BLOCK_ROWS, token_ranges, window_ranges

# Allowance per query vector for a bfloat16 scan's error, times |q_i| * max |d|: 2^-9. The worst
# case is ~3 * 2^-8 (inputs and result rounded to 8 bits), reached only when every rounding of a
# 384-term dot product goes the same way; measured on unit vectors (384 dims, 32-vector queries):
# error std 0.002 and max 0.011 per MaxSim score, against this allowance's 0.0625 (32 * 2^-9).
BFLOAT16_ERROR = 2.0 ** -9
SCAN_DTYPES = ("float32", "bfloat16", "int8")
SCAN_DTYPE_FILE = "scan-dtype.json"  # {machine key: dtype name}: the timing's answers
TIMING = "prepacked-int8-bfloat16"  # what the timing multiplies (part of the machine key)
DOUBTFUL = (1.2, 2.0)  # speedups over float32 not kept: too near the 1.5x the choice turns on
CONVERT_ROWS = 4096  # vectors converted at a time (convert_into): in cache (65,536: 382 -> 45 ms for 115k)


def scan_allowance(dtype: torch.dtype, max_norm: float, max_scale: float, q_norm: float, q_scale: float) -> float:
    """How far a scan's MaxSim score of a query may be from the float32 one (0: the scan is exact).
    ``max_norm``, ``max_scale``: the largest token norm and int8 scale of the documents; ``q_norm``,
    ``q_scale``: the sums of the query vectors' norms and int8 scales (``quantized``). bfloat16:
    BFLOAT16_ERROR * max_norm * q_norm. int8: max_scale * q_norm + max_norm * q_scale, the sum of the
    two rounding terms' scales (the worst case is ~10x more: sqrt(dim) / 2 each): 5x the largest
    error measured on three collections of 384-dim vectors (0.057 on Cranfield)."""
    if dtype == torch.bfloat16:
        return BFLOAT16_ERROR * max_norm * q_norm
    return max_scale * q_norm + max_norm * q_scale if dtype == torch.int8 else 0.0


def quantized(x: torch.Tensor, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, dim) float32 -> (int8 (n, dim), float32 scales (n, 1)): ``x ~ scales * rows``, each row's
    largest |component| at 127 (a row of zeros: scale 1). With ``out`` (int8 (n, dim)) the rows go
    there and ``x`` is overwritten: nothing of its size is allocated (what a scan copy's build needs:
    fresh pages cost more than the arithmetic)."""
    scale = torch.maximum(x.amax(1, keepdim=True), x.amin(1, keepdim=True).neg_()).div_(127)
    scale.masked_fill_(scale == 0, 1.0)
    scaled = (x.mul_ if out is not None else x.mul)(scale.reciprocal()).round_()  # 4x faster than x / scale
    return (scaled.to(torch.int8) if out is None else out.copy_(scaled)), scale


def convert_into(v, out: torch.Tensor, scales: torch.Tensor | None = None) -> float:
    """``v`` (n, dim), any float dtype (numpy or torch), into ``out`` (n, dim) in its dtype, or with
    ``scales`` (n, 1) float32 quantized to int8 (``quantized``), CONVERT_ROWS vectors at a time through
    one scratch buffer (nothing of ``v``'s size allocated); returns the largest vector norm (0 if none)."""
    max_norm = 0.0
    for s in range(0, len(v), CONVERT_ROWS):
        block = v[s: s + CONVERT_ROWS]
        part = scratch(block.shape[0] * block.shape[1], torch.float32, "convert").view(block.shape)
        part.copy_(block if isinstance(block, torch.Tensor) else from_numpy(block))
        max_norm = max(max_norm, float(torch.linalg.vector_norm(part, dim=1).max()))
        if scales is None:
            out[s: s + len(part)] = part
        else:
            scales[s: s + len(part)] = quantized(part, out=out[s: s + len(part)])[1]
    return max_norm


@torch.inference_mode()
def segment_max_sum(sim: torch.Tensor, lengths: np.ndarray, widths: list[int] | None = None,
                    column_scale: torch.Tensor | None = None) -> np.ndarray:
    """``sim``: (n_tokens, n_cols) similarities of packed documents of ``lengths`` tokens.
    Returns (n_docs,) sums over columns of per-document maxima, or (n_queries, n_docs) when
    ``widths`` splits the columns into queries; maxima times ``column_scale`` (n_cols,) when given.
    A document without tokens scores 0."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n_docs = len(lengths)
    n_q = 1 if widths is None else len(widths)
    out = np.zeros((n_q, n_docs), dtype=np.float32)
    nz = lengths > 0
    if n_docs and nz.any():
        maxima = segment_max(sim, torch.from_numpy(lengths[nz])).float()
        if column_scale is not None:
            maxima *= column_scale
        if widths is None:
            out[0, nz] = maxima.sum(1).numpy()
        else:
            start = 0
            for qi, w in enumerate(widths):
                out[qi, nz] = maxima[:, start: start + w].sum(1).numpy()
                start += w
    return out[0] if widths is None else out


def segment_max(sim: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Row maxima of consecutive segments of ``lengths`` (all > 0) rows of ``sim`` -> (n_segments,
    n_cols) float32: one ``scatter_reduce`` by segment (2-3x a padded gather + max, 4-8x
    ``segment_reduce``, on 32 columns). Half-precision similarities are made float32 first: torch's
    bfloat16 / float16 reductions are not vectorized (60x slower than the conversion)."""
    rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths)[:, None].expand(-1, sim.shape[1])
    out = torch.full((len(lengths), sim.shape[1]), -torch.inf)
    return out.scatter_reduce_(0, rows, sim.float(), "amax")


@torch.inference_mode()
def maxsim_packed(queries: list[np.ndarray], vectors, lengths: np.ndarray) -> np.ndarray:
    """MaxSim of each query (Lq_i, dim) with each packed document -> (n_queries, n_docs) float32.
    ``vectors`` (n_tokens, dim), any float dtype, numpy or torch: converted, BLOCK_ROWS vectors at a
    time, into this thread's scratch buffers (a re-score allocates no fresh pages, and at most
    BLOCK_ROWS rows of buffer whatever its size); a float32 tensor is read as it is."""
    q = torch.from_numpy(np.concatenate(queries).astype(np.float32, copy=False))
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros((len(queries), len(lengths)), dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for a, b in window_ranges(lengths, BLOCK_ROWS):
        part = vectors[int(starts[a]): int(starts[b])]
        v = part if isinstance(part, torch.Tensor) and part.dtype == torch.float32 else \
            _float32_copy(part)
        sim = scratch(v.shape[0] * q.shape[0], torch.float32, "packed_sim").view(v.shape[0], q.shape[0])
        torch.mm(v, q.T, out=sim)
        out[:, a:b] = segment_max_sum(sim, lengths[a:b], [len(x) for x in queries])
    return out


def _float32_copy(part) -> torch.Tensor:
    """``part`` (n, dim), any float dtype, numpy or torch, in this thread's "packed" scratch buffer."""
    v = scratch(part.shape[0] * part.shape[1], torch.float32, "packed").view(tuple(part.shape))
    return v.copy_(part if isinstance(part, torch.Tensor) else from_numpy(part))


def maxsim_documents(queries: list[np.ndarray], vectors, offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """MaxSim of each query with the documents ``docs`` of a segment (rows ``offsets[d]:offsets[d +
    1]`` of ``vectors``) -> (n_queries, len(docs)) float32: ``maxsim_packed`` on ``document_rows``,
    BLOCK_ROWS vectors at a time (the scratch buffers stay that size)."""
    lengths = offsets[docs + 1] - offsets[docs]
    out = np.zeros((len(queries), len(docs)), dtype=np.float32)
    for a, b in window_ranges(lengths, BLOCK_ROWS):
        out[:, a:b] = maxsim_packed(queries, document_rows(vectors, offsets, docs[a:b]), lengths[a:b])
    return out


@torch.inference_mode()
def document_rows(vectors, offsets: np.ndarray, docs: np.ndarray) -> torch.Tensor:
    """(their tokens, dim) float32: the rows ``offsets[d]:offsets[d + 1]`` of ``vectors`` (a
    CheckedArray or numpy array, any float dtype) of each document of ``docs``, in order, gathered
    by one ``index_select`` into this thread's scratch buffers (valid until its next call): no fresh
    pages, and no GIL held while it copies, so a batch's re-scores run side by side (Cranfield,
    ms per query one per call / all in one call, k = 100, against a numpy gather: 17.6 -> 14.5-15.2 /
    9.4 -> 8.7-8.9; one ``copy_`` per document: 15.6-15.8 / 11.2-11.5)."""
    tok = token_ranges(offsets, docs)
    if hasattr(vectors, "check_rows") and len(tok):  # a CheckedArray: its blocks checked, then its map read
        vectors.check_rows(int(tok.min()), int(tok.max()) + 1, tok)
    src = from_numpy(getattr(vectors, "array", vectors))
    shape = (len(tok), src.shape[1])
    rows = scratch(len(tok) * shape[1], src.dtype, "rows").view(shape)
    torch.index_select(src, 0, torch.from_numpy(tok), out=rows)
    return rows if src.dtype == torch.float32 else scratch(rows.numel(), torch.float32, "rows").view(shape).copy_(rows)


def from_numpy(array) -> torch.Tensor:
    """A numpy array (memory-mapped, read-only ones too) as a tensor sharing its memory."""
    with warnings.catch_warnings():  # torch warns about read-only arrays; it only reads this one
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(array))


@functools.lru_cache(maxsize=1)
def scan_dtype() -> torch.dtype:
    """The dtype the index scans score in: the fastest of bfloat16 (AVX512-BF16 / AMX: 2-4x float32)
    and int8 (prepacked blocks, ``maxsim.index.packed_int8``, else ``torch._int_mm``; AVX512-VNNI /
    AMX: 2x bfloat16 for one query) where it multiplies at least 1.5x faster than float32 (a block
    of BLOCK_ROWS x 384 by 32 query vectors, as a scan multiplies it), else float32.
    ``MAXSIM_SCAN_DTYPE`` (one of SCAN_DTYPES) overrides the choice. The timing (~80 ms) runs once
    per machine, torch version and thread count: its answer is kept in the cache folder
    (``maxsim.cache.cache_root``, file SCAN_DTYPE_FILE), unless it was DOUBTFUL."""
    forced = os.environ.get("MAXSIM_SCAN_DTYPE", "")
    if forced:
        if forced not in SCAN_DTYPES:
            raise InvalidInputError(f"MAXSIM_SCAN_DTYPE must be one of {', '.join(SCAN_DTYPES)}, got {forced!r}.")
        return getattr(torch, forced)
    path, key = cache_root() / SCAN_DTYPE_FILE, _machine_key()
    known = _read_choices(path)
    if known.get(key) in SCAN_DTYPES:
        return getattr(torch, known[key])
    dtype, speedup = _timed_scan_dtype()
    if not DOUBTFUL[0] < speedup < DOUBTFUL[1]:  # a near tie (or a timing under load) is timed again
        _write_choices(path, {**known, key: str(dtype).removeprefix("torch.")})
    return dtype


def _machine_key() -> str:
    """What the scan dtype's timing depends on: the CPU (architecture, the instruction set torch
    dispatches to, cores), torch's version and threads, and which timing (TIMING: a new one does not
    read an older one's answers)."""
    facts = [platform.machine(), torch.backends.cpu.get_cpu_capability(), os.cpu_count(), torch.__version__,
             torch.get_num_threads(), TIMING]
    return hashlib.sha1(json.dumps(facts).encode()).hexdigest()[:16]


def _read_choices(path) -> dict:
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, unreadable or damaged: timed again and rewritten
        return {}
    return known if isinstance(known, dict) else {}


def _write_choices(path, choices: dict) -> None:
    """Replace the cache file whole (a reader never sees half of it); a read-only cache is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(choices), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _timed_scan_dtype() -> tuple[torch.dtype, float]:
    """The dtype the timing picks, and how much faster than float32 the fastest dtype multiplied."""
    x, y = torch.randn(BLOCK_ROWS, 384), torch.randn(32, 384)
    runs = {dtype: functools.partial(product, x.to(dtype), y.to(dtype).T) for dtype in (torch.bfloat16, torch.float32)}
    runs[torch.int8] = _int8_product(x, y)
    best = dict.fromkeys(runs, float("inf"))
    with torch.inference_mode():
        for round_ in range(4):  # interleaved rounds, best of each; round 0 warms up (oneDNN compiles)
            for dtype, run in runs.items():
                start = time.perf_counter()
                for _ in range(4):
                    run()
                if round_:
                    best[dtype] = min(best[dtype], time.perf_counter() - start)
    fastest = min(runs, key=best.get)
    speedup = best[torch.float32] / best[fastest]
    return (fastest if speedup > 1.5 else torch.float32), speedup


def _int8_product(x: torch.Tensor, y: torch.Tensor):
    """The int8 product an int8 scan would run on ``x`` (rows, dim) and ``y`` (columns, dim): a
    prepacked block (``maxsim.index.packed_int8``, its row scales applied too) or ``torch._int_mm``."""
    from maxsim.index import packed_int8

    if not packed_int8.available():
        return functools.partial(product, quantized(x)[0], quantized(y)[0].T)
    block = packed_int8.pack(x, np.array([0, len(x)]), np.array([len(x)]), block_rows=len(x))[0][0]
    return functools.partial(block.similarities, packed_int8.query_rows(quantized(y)[0]))


def product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` (int8 operands: the exact int32 product, ``torch._int_mm``)."""
    if a.dtype == torch.int8:
        return torch._int_mm(a, b, out=out)
    return torch.mm(a, b, out=out)


_BUFFERS = threading.local()
ROW_STEP = 64  # scan blocks are padded to a multiple of this many rows at least (padded_rows)


def scratch(n_elements: int, dtype: torch.dtype, name: str = "sim") -> torch.Tensor:
    """A flat tensor of at least ``n_elements``, reused by this thread's later calls with the same
    ``name`` (a scan then allocates nothing of the index's size, and no fresh pages per block)."""
    key = f"{name}_{dtype}"
    buf = getattr(_BUFFERS, key, None)
    if buf is None or buf.numel() < n_elements:
        buf = torch.empty(n_elements, dtype=dtype)
        setattr(_BUFFERS, key, buf)
    return buf[:n_elements]


def padded_queries(q: torch.Tensor) -> torch.Tensor:
    """Query vectors (n, dim) with zero rows added up to a multiple of 16, or of a sixteenth of ``n``
    (at most 1/16 more): oneDNN keeps a compiled kernel per matrix shape (~0.65 MB each, never
    freed), so a service meeting every batch size and block size would otherwise grow by hundreds of
    MB. Few column counts, and few row counts per column count (``padded_rows``), keep it bounded."""
    n = q.shape[0]
    step = max(16, 1 << max(0, n.bit_length() - 5))
    size = -(-n // step) * step
    return torch.cat([q, q.new_zeros(size - n, q.shape[1])]) if size > n else q


def padded_rows(n: int) -> int:
    """``n`` rounded up to a multiple of ROW_STEP, or of a sixteenth of ``n`` (at most 1/16 more rows,
    16-32 shapes per doubling: see ``padded_queries``)."""
    step = max(ROW_STEP, 1 << max(0, n.bit_length() - 5))
    return -(-n // step) * step


def scan_block(vectors, start: int, stop: int, dtype: torch.dtype, rows: int) -> torch.Tensor:
    """Rows [start, stop) of ``vectors`` (torch, or numpy converted to ``dtype``) followed by more, up
    to ``rows`` in all when ``vectors`` is a tensor holding them (a view: no copy, and one matrix shape
    for every block of a scan), else up to ``padded_rows`` (zeros: a scratch copy)."""
    if isinstance(vectors, torch.Tensor) and vectors.dtype == dtype and stop - start <= rows <= len(vectors) - start:
        return vectors[start: start + rows]
    return padded_copy(vectors[start:stop], dtype)


def padded_copy(block, dtype: torch.dtype) -> torch.Tensor:
    """``block`` (n, dim), numpy or torch, in this thread's scratch buffer as ``dtype``, with zero rows
    up to ``padded_rows(n)``."""
    n, dim = block.shape
    rows = padded_rows(n)
    out = scratch(rows * dim, dtype, "block").view(rows, dim)
    out[:n] = block if isinstance(block, torch.Tensor) else from_numpy(block)
    out[n:] = 0
    return out


@torch.inference_mode()
def maxsim_scan(q: torch.Tensor, widths: list[int], block: torch.Tensor, lengths: np.ndarray,
                scales: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """Approximate MaxSim for an index scan: ``q`` (>= sum widths, dim; rows past the widths are
    padding) and ``block`` (>= sum lengths, dim; rows past them are ignored: ``scan_block``) in the
    scan dtype -> (n_queries, n_docs) float32, within ``scan_allowance`` of float32's. int8:
    ``scales`` = (the block's row scales (rows, 1), the query's column scales (columns,)). The
    similarities go to this thread's scratch buffers."""
    shape = (block.shape[0], q.shape[0])
    if scales is None:
        sim = product(block, q.T, out=scratch(shape[0] * shape[1], q.dtype).view(shape))
    else:
        raw = product(block, q.T, out=scratch(shape[0] * shape[1], torch.int32).view(shape))
        sim = torch.mul(raw, scales[0], out=scratch(shape[0] * shape[1], torch.float32).view(shape))
    n = int(np.sum(lengths))
    return segment_max_sum(sim[:n], lengths, widths, None if scales is None else scales[1])
