"""An exact index's int8 scan copy as oneDNN-prepacked blocks: the int8 product x86 CPUs run
fastest (AMX or AVX512-VNNI tiles through ``torch.ops.onednn.qlinear_pointwise``, the rows' scales
applied in the same pass, the result written in bfloat16), where ``torch._int_mm`` takes a slower
general kernel and a second pass for the scales.

A block holds the int8 rows of whole documents, PACK_ROWS at most (one longer document alone),
padded with zero rows to a multiple of PACK_STEP (few shapes: oneDNN keeps a kernel per shape), in
oneDNN's blocked layout (the same bytes as the rows). Its ``scores`` are the numbers
``maxsim.index.packed.maxsim_scan`` computes from those rows (the int32 products are exact and
scaled in float32), each per-document maximum rounded to bfloat16: at most 2^-9 of it, which the
scan's allowance adds (``maxsim.index.exact_scan``).

Measured on an Intel Xeon (AMX, 2 cores), Cranfield (384 dims, 237k vectors), against
``torch._int_mm``: one query per call 22.2 -> 14.6 ms, all queries in one call 9.8 -> 5.4 ms per
query (blocks of 8,192 vectors, products of 128 query vectors; PACK_ROWS below). Products written
in bfloat16 rather than float32 (half the bytes for the maxima to read), interleaved, k = 10: one
query per call 9.0-9.5 -> 7.7-8.1 ms, all in one call 4.1-4.4 -> 3.8-3.9 (re-scored candidates 16
-> 18; k = 100: 147 -> 159, one per call 15.1-16.2 -> 14.3-14.8, batched level).

With few values per document the product is cheap and the per-document maxima (numpy, one thread)
dominate, so a segment is packed where its documents hold MIN_DOC_VALUES = 4,096 values (dims x
vectors) on average (``used``). Synthetic exact indexes, one query per call / all in one call,
speed-up of packing over ``torch._int_mm``, interleaved, k = 10 (fitted on): 32 dims x 30 vectors
1.04x / 0.89x, 64 x 30 1.06x / 0.86x, 128 x 30 1.23x / 0.95x, 384 x 30 1.43x / 1.01x, 64 x 60
1.39x / 1.30x, 128 x 60 1.76x / 1.61x; held out: 96 x 45 1.31x / 1.29x, 256 x 35 1.52x / 1.16x,
32 x 140 1.88x / 2.06x. Where the operator is missing or not x86 (``available``) the scan
multiplies with ``torch._int_mm``.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

import numpy as np
import torch

from maxsim.index.packed import convert_into, padded_rows
from maxsim.index.packed_numpy import window_ranges

# token vectors per block and query vectors per product (its float32 result: 8 MB). Chosen on Cranfield,
# ms per query one per call / batched, interleaved: 8,192 x 128 19.3 / 7.0, 24,576 x 64 15.8 / 6.6,
# 32,768 x 64 15.2 / 6.9, 49,152 x 64 15.1 / 8.0 (x 128 and 32,768 rows: 10.5 batched); held out,
# 8,192 x 128 -> 32,768 x 64: nq-kd 9.3 / 4.0 -> 7.7 / 4.0, 2,500 synthetic documents of 64-160
# vectors 27.3 / 13.6 -> 23.8 / 13.0. One query's product streams its block: longer blocks, fewer calls
PACK_ROWS, PACK_COLUMNS = 32768, 64
PACK_STEP = 8192  # a segment's last block is padded to a multiple of this: 4 shapes, little padding
MIN_DOC_VALUES = 4096  # a segment is packed from this many values (dims x vectors) per document on


@dataclass
class PackedBlock:
    """Documents ``docs`` = [a, b) (segment-local) of a segment: ``weight`` their rows prepacked
    (``n_rows`` real, zeros after), ``scales`` (rows,) float32 (vector ~ scale * row), ``starts`` the
    first row of each document with vectors, ``nonempty`` those documents' places in [a, b)."""

    docs: tuple[int, int]
    weight: torch.Tensor
    scales: torch.Tensor
    n_rows: int
    starts: np.ndarray
    nonempty: np.ndarray

    def scores(self, x: torch.Tensor, column_scales: np.ndarray, query_starts: np.ndarray) -> np.ndarray:
        """``x`` (columns, dim) int8 query rows (``query_rows``), ``column_scales`` (n,) the scales
        of the first n (the queries' vectors, the rest padding), ``query_starts`` each query's first
        column -> (n_queries, b - a) float32 approximate MaxSim (a document without vectors: 0)."""
        out = np.zeros((len(query_starts), self.docs[1] - self.docs[0]), dtype=np.float32)
        if not len(self.starts):
            return out
        bits = np.empty((x.shape[0], len(self.starts)), dtype=np.int16)
        for c in range(0, x.shape[0], PACK_COLUMNS):
            sim = self.similarities(x[c: c + PACK_COLUMNS]).view(torch.int16).numpy()[:, : self.n_rows]
            segment_maxima(sim, self.starts, bits[c: c + PACK_COLUMNS])
        maxima = torch.from_numpy(bits).view(torch.bfloat16).float().numpy()
        n = len(column_scales)
        out[:, self.nonempty] = np.add.reduceat(maxima[:n] * column_scales[:, None], query_starts, axis=0)
        return out

    def similarities(self, x: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        """(columns, rows) similarities (scaled by the rows' scales) of at most PACK_COLUMNS int8
        query rows ``x``, in ``dtype`` (bfloat16: each rounded to 2^-9 of itself at most). The rows go
        to oneDNN as they are, signed, with no zero point: ~8 % faster than as uint8 + 128 (one query,
        Cranfield's blocks, products alone: 4.02 vs 4.38 ms), the same numbers."""
        return torch.ops.onednn.qlinear_pointwise(x, 1.0, 0, self.weight, self.scales,
                                                  _zero_points(len(self.scales)), None, 1.0, 0, dtype,
                                                  "none", [], "")


def segment_maxima(bits: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:
    """Row maxima of the segments of bfloat16 values (columns, rows), given as their int16 bit
    patterns, from ``starts`` on -> ``out`` (columns, segments), bit patterns. A value's bits order
    like the value where it is >= 0, and every negative one below those, so one integer max is the
    answer wherever a segment holds a value >= 0; a segment of negative values only (its max
    negative) takes the bits' min, the negative nearest 0. Half the bytes of float32 to write and
    read again: Cranfield's blocks against one query 6.2 -> 5.6 ms."""
    np.maximum.reduceat(bits, starts, axis=1, out=out)
    negative = out < 0
    if negative.any():
        out[negative] = np.minimum.reduceat(bits, starts, axis=1)[negative]


@torch.inference_mode()
def pack(vectors, offsets: np.ndarray, doclens: np.ndarray, block_rows: int = PACK_ROWS
         ) -> tuple[list[PackedBlock], float, float]:
    """A segment's ``vectors`` (n_tokens, dim; any float dtype, numpy or torch) as PackedBlocks of
    ``block_rows`` rows, with the largest token norm and int8 scale (what the scan's error scales with)."""
    blocks, max_norm, max_scale = [], 0.0, 0.0
    dim, step = vectors.shape[1], min(PACK_STEP, block_rows)
    for a, b in window_ranges(doclens, block_rows):
        start, stop = int(offsets[a]), int(offsets[b])
        n = stop - start
        rows = padded_rows(n) if n > block_rows else max(1, -(-n // step)) * step
        int8, scales = torch.zeros((rows, dim), dtype=torch.int8), torch.ones((rows, 1))  # padding: zero rows
        max_norm = max(max_norm, convert_into(vectors[start:stop], int8[:n], scales[:n]))
        max_scale = max(max_scale, float(scales[:n].max()) if n else 0.0)
        rel = offsets[a:b] - offsets[a]
        nonempty = np.nonzero(doclens[a:b])[0]
        weight = torch.ops.onednn.qlinear_prepack(int8, [PACK_COLUMNS, dim])
        blocks.append(PackedBlock((a, b), weight, scales[:, 0].contiguous(), n, rel[nonempty], nonempty))
    return blocks, max_norm, max_scale


def query_rows(q: torch.Tensor) -> torch.Tensor:
    """int8 query rows (columns, dim) with zero rows added up to a multiple of PACK_COLUMNS past it
    (every product of a scan then has one of few shapes)."""
    n = q.shape[0]
    size = n if n <= PACK_COLUMNS else -(-n // PACK_COLUMNS) * PACK_COLUMNS
    return q if size == n else torch.cat([q, q.new_zeros(size - n, q.shape[1])])


def used(dim: int, tokens_per_doc: float) -> bool:
    """Whether the int8 scan copy of a segment of ``dim``-dimensional vectors, ``tokens_per_doc`` per
    document on average, is packed."""
    return dim * tokens_per_doc >= MIN_DOC_VALUES and available()


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether the scan's int8 copy is packed: an x86 CPU and a torch build with oneDNN's prepacked
    int8 linear, which computes what ``torch._int_mm`` does on a small test."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(-127, 128, (64, 32), dtype=torch.int8, generator=gen)
    q = torch.randint(-127, 128, (32, 32), dtype=torch.int8, generator=gen)
    try:
        block = PackedBlock((0, 1), torch.ops.onednn.qlinear_prepack(rows, [32, 32]), torch.ones(64), 64,
                            np.zeros(1, np.int64), np.zeros(1, np.int64))
        exact, rounded = block.similarities(query_rows(q), torch.float32), block.similarities(query_rows(q))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return torch.equal(exact, torch._int_mm(rows, q.T).T.float()) and torch.equal(rounded, exact.bfloat16())


@functools.lru_cache(maxsize=64)
def _zero_points(rows: int) -> torch.Tensor:
    """(rows,) int32 zeros: the blocks' rows are symmetric (no zero point)."""
    return torch.zeros(rows, dtype=torch.int32)
