"""The torch scan of an ExactIndex (``maxsim.index.exact``): query groups of at most
MAX_GROUP_COLUMNS vectors against blocks of at most SCAN_BLOCK_ELEMENTS similarities, in the scan
dtype (``maxsim.index.packed.scan_dtype``); a bfloat16 scan keeps a copy of each segment's vectors
and re-scores its candidates in float32 (``ExactIndex._exact``).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from maxsim.index.exact import give_back
from maxsim.index.packed import (
    SCAN_ERROR,
    as_tensor,
    maxsim_packed,
    maxsim_scan,
    padded_copy,
    padded_queries,
    scan_block,
    scan_dtype,
)
from maxsim.index.packed_numpy import BLOCK_ROWS, merge_topk, token_ranges, top_window, window_ranges

SCAN_BLOCK_ELEMENTS = 1 << 21  # similarities per block: 8,192 document vectors x 256 query vectors
MAX_GROUP_COLUMNS = 2048  # query vectors scored together
_CACHE_LOCK = threading.Lock()


@torch.inference_mode()


def search(index, queries: list[np.ndarray], k: int, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query its top ``k`` (global positions, float32 scores) among the ``mask``ed documents of
    ``index``: a scan, then where it is approximate an exact re-score of every document within its
    error of the k-th best."""
    dtype, out = scan_dtype(), []
    for group in _query_groups(queries):
        qs = [queries[j] for j in group]
        for q, (docs, scores) in zip(qs, scan(index, qs, k, mask, dtype)):
            exact = index._exact([q], docs, maxsim_packed)[0] if SCAN_ERROR[dtype] else scores
            out.append(merge_topk(None, docs, exact, k))
    return out


def scan(index, qs: list[np.ndarray], k: int, mask: np.ndarray, dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query the (global positions, approximate scores) that may be in its top ``k``."""
    q = padded_queries(torch.from_numpy(np.concatenate(qs)).to(dtype))
    widths = [len(x) for x in qs]
    q_norms = np.array([np.linalg.norm(x, axis=1).sum() for x in qs], dtype=np.float64)
    columns = 1 << (q.shape[0] - 1).bit_length()  # one block size per power of two: few matrix shapes
    budget = max(1, min(index.params.chunk_tokens, BLOCK_ROWS, SCAN_BLOCK_ELEMENTS // columns))
    found = [([], []) for _ in qs]
    for si, seg in enumerate(index._segments):
        base = int(index._bases[si])
        seg_mask = mask[base: base + seg.n_docs]
        if not seg_mask.any():
            continue
        scores, max_norm = _scan_segment(seg, q, widths, seg_mask, budget, dtype)
        live = np.nonzero(seg_mask)[0]
        for row, (docs, vals) in enumerate(found):
            d, v = top_window(live + base, scores[row, live], k, 2 * SCAN_ERROR[dtype] * max_norm * q_norms[row])
            docs.append(d)
            vals.append(v)
    return [(np.concatenate(d), np.concatenate(v)) if d else (np.zeros(0, np.int64), np.zeros(0, np.float32))
            for d, v in found]


def _scan_segment(seg, q, widths, seg_mask, budget, dtype):
    """(n_queries, n_docs) approximate scores of one segment (masked-out ones undefined), and
    the largest token norm of the segment (what the scan error scales with)."""
    vectors, max_norm = _scan_vectors(seg, dtype)
    scores = np.zeros((len(widths), seg.n_docs), dtype=np.float32)
    for a, b in window_ranges(seg.doclens, budget):
        sel = np.nonzero(seg_mask[a:b])[0]
        if not len(sel):
            continue
        if len(sel) * 4 >= b - a:  # dense: score the whole range
            block = scan_block(vectors, int(seg.offsets[a]), int(seg.offsets[b]), dtype, budget)
            scores[:, a:b] = maxsim_scan(q, widths, block, seg.doclens[a:b])
        else:
            block = padded_copy(vectors[token_ranges(seg.offsets, a + sel)], dtype)
            scores[:, a + sel] = maxsim_scan(q, widths, block, seg.doclens[a + sel])
    return scores, max_norm


def _scan_vectors(seg, dtype):
    """The vectors the scan reads: the stored ones (float32 scan) or the segment's cached
    bfloat16 copy, built on first use; and the largest token norm (0 when not needed)."""
    if not SCAN_ERROR[dtype]:
        return seg.arrays["vectors"], 0.0
    with _CACHE_LOCK:
        if "scan" not in seg.arrays:
            v = seg.arrays["vectors"]
            copy = torch.empty((len(v), v.shape[1]), dtype=dtype)
            max_norm = 0.0
            for s in range(0, len(v), 1 << 16):
                part = as_tensor(v[s: s + (1 << 16)], torch.float32)
                copy[s: s + len(part)] = part
                max_norm = max(max_norm, float(torch.linalg.vector_norm(part, dim=1).max()))
            seg.arrays["scan"], seg.arrays["scan_max_norm"] = copy, max_norm
            give_back(seg)  # the scan reads the copy from now on
    return seg.arrays["scan"], seg.arrays["scan_max_norm"]


def _query_groups(queries: list[np.ndarray]) -> list[list[int]]:
    """Consecutive query indices, each group at most MAX_GROUP_COLUMNS vectors (a longer query alone)."""
    groups, cur, cols = [], [], 0
    for qi, q in enumerate(queries):
        if cur and cols + len(q) > MAX_GROUP_COLUMNS:
            groups.append(cur)
            cur, cols = [], 0
        cur.append(qi)
        cols += len(q)
    groups.append(cur)
    return groups
