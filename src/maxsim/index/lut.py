"""MaxSim scored from the codes: per-query lookup tables instead of decompressed vectors.

A stored token is centroid ``c`` plus a residual coded one byte per group of dimensions
(``maxsim.index.residual``), so its similarity to a query vector ``q_i`` is
``S[c, i] + sum_p T_p[byte_p, i]`` where ``S = C Q^T`` are the centroid scores of the search's first
stage and ``T_p = codebook_p Q_p^T`` (256 x Lq) is the table of group ``p``: ``width + 1`` table
rows summed per token (product-quantization "asymmetric distance" scoring). Both go into one
float16 table of ``width * 256 + K`` rows; ``torch.nn.functional.embedding_bag`` sums each token's
rows (fbgemm's kernel, 32-bit offsets) without materializing the vectors, then a segment max per
document and a sum over query vectors give MaxSim. Measured against decompressing the same tokens
and one float32 GEMM: 4-14x faster (``bench/index.py``, "scoring" table); float16 tables were 1.5-2x
faster than float32 ones and than fbgemm's 8-bit row-wise tables, at the same ranking.

Documents are scored WINDOW_TOKENS tokens at a time, their table rows built in this thread's scratch
buffer: one query's rows at k = 100 would otherwise be a fresh ~30 MB (384 dims) whose pages the
kernel maps anew on every query (~9,000 page faults, a third of the query's time on 4,000
documents).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from maxsim.index.packed import scratch, segment_max_sum
from maxsim.index.packed_numpy import token_ranges, window_ranges
from maxsim.index.residual import padded

WINDOW_TOKENS = 1 << 15  # tokens scored per step (the scratch buffer: 32,768 x (width + 1) int32)


@torch.inference_mode()
def score_table(codebook: np.ndarray, q: np.ndarray, centroid_scores: np.ndarray) -> torch.Tensor:
    """(width * 256 + K, Lq) float16: the residual tables of ``q`` (Lq, dim) for ``codebook``
    (width, 256, group), then ``centroid_scores`` (K, Lq) = C q^T."""
    width, _, group = codebook.shape
    # (width, group, Lq), contiguous: bmm on the permuted view took 50x longer at 2 threads
    qg = torch.from_numpy(padded(q, width * group)).view(len(q), width, group).permute(1, 2, 0).contiguous()
    tables = torch.bmm(torch.from_numpy(codebook), qg).reshape(width * 256, len(q))
    return torch.cat([tables, torch.from_numpy(centroid_scores)]).half()


def table_rows(codes: np.ndarray, residuals: np.ndarray) -> torch.Tensor:
    """(n, width + 1) int32 rows of ``score_table`` for tokens of centroid ids ``codes`` (n,) and
    residual codes ``residuals`` (n, width) uint8, in this thread's scratch buffer (overwritten by
    its next call)."""
    width = residuals.shape[1]
    rows = scratch(len(codes) * (width + 1), torch.int32, "table_rows").view(len(codes), width + 1)
    rows[:, :width] = torch.from_numpy(np.asarray(residuals))
    rows[:, width] = torch.from_numpy(np.asarray(codes)).to(torch.int32)
    rows += torch.arange(0, 256 * (width + 1), 256, dtype=torch.int32)  # 2x a promoting add into the view
    return rows


@torch.inference_mode()
def maxsim_codes(table: torch.Tensor, codes, residuals, offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """MaxSim (len(docs),) float32 of the query of ``table`` with documents ``docs`` of packed
    storage: token ``t`` has centroid id ``codes[t]`` and residual codes ``residuals[t]`` (arrays or
    memory maps), document ``d`` tokens ``offsets[d]:offsets[d + 1]`` (sum_i max_t of the summed
    rows; 0 without tokens)."""
    lengths = offsets[docs + 1] - offsets[docs]
    out = np.zeros(len(docs), dtype=np.float32)
    for a, b in window_ranges(lengths, WINDOW_TOKENS):
        tok = token_ranges(offsets, docs[a:b])
        sim = torch.nn.functional.embedding_bag(table_rows(codes[tok], residuals[tok]), table, mode="sum")
        out[a:b] = segment_max_sum(sim, lengths[a:b])
    return out


@functools.cache
def warm_up(shape: tuple[int, int, int], query_tokens: int = 32) -> None:
    """Score a dummy query of ``query_tokens`` vectors against one token with a codebook of
    ``shape``, once per process and shape: torch initializes its kernels and fbgemm compiles its
    embedding_bag kernel for that table width on first use (milliseconds), which would otherwise
    fall on the first query an opened index serves."""
    q = np.zeros((query_tokens, shape[0] * shape[2]), dtype=np.float32)
    table = score_table(np.zeros(shape, dtype=np.float32), q, np.zeros((1, query_tokens), np.float32))
    maxsim_codes(table, np.zeros(1, np.int64), np.zeros((1, shape[0]), np.uint8), np.arange(2), np.zeros(1, np.int64))
