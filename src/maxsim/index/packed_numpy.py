"""Packed documents (back to back in one (n_tokens, dim) array) without torch: token positions,
windows, top-k merges, and a float32 MaxSim kernel in numpy.

``maxsim_numpy`` is what an exact index scans with in a process that has not loaded torch and scans
in float32 (a one-off ``maxsim search``: importing torch would cost ~1 s there, the scan of a small
index ~0.1 s). ``maxsim.index.packed`` holds the torch kernels a service runs.
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 8192  # document vectors per block at most (scans, re-scores: the scratch buffers' size)


def maxsim_documents_numpy(queries: list[np.ndarray], vectors, offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """``maxsim.index.packed.maxsim_documents`` in numpy: BLOCK_ROWS vectors of the documents gathered
    at a time, then ``maxsim_numpy``."""
    lengths = offsets[docs + 1] - offsets[docs]
    out = np.zeros((len(queries), len(docs)), dtype=np.float32)
    for a, b in window_ranges(lengths, BLOCK_ROWS):
        out[:, a:b] = maxsim_numpy(queries, vectors[token_ranges(offsets, docs[a:b])], lengths[a:b])
    return out


def maxsim_numpy(queries: list[np.ndarray], vectors, lengths: np.ndarray) -> np.ndarray:
    """Float32 MaxSim of each query (Lq_i, dim) with each packed document of ``vectors`` (n_tokens,
    dim; any float dtype, e.g. a float16 memmap) -> (n_queries, n_docs). Converts BLOCK_ROWS vectors
    at a time; a document (or query) without vectors scores 0."""
    q = np.concatenate(queries).astype(np.float32, copy=False)
    widths = np.cumsum([0, *(len(x) for x in queries)])
    rows_q = np.nonzero(np.diff(widths))[0]
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    out = np.zeros((len(queries), len(lengths)), dtype=np.float32)
    for a, b in window_ranges(lengths, BLOCK_ROWS):
        docs = np.nonzero(lengths[a:b])[0]
        if not len(docs) or not len(rows_q):
            continue
        sim = q @ np.asarray(vectors[int(starts[a]): int(starts[b])], dtype=np.float32).T  # (columns, rows)
        maxima = np.maximum.reduceat(sim, starts[a + docs] - starts[a], axis=1)
        out[rows_q[:, None], a + docs] = np.add.reduceat(maxima, widths[rows_q], axis=0)
    return out


def token_ranges(offsets: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Token positions of the documents ``docs`` (local), concatenated in order."""
    starts, stops = offsets[docs], offsets[docs + 1]
    lens = stops - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    rep = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return rep + np.arange(total, dtype=np.int64)


def merge_topk(best: tuple[np.ndarray, np.ndarray] | None, docs: np.ndarray, scores: np.ndarray, k: int):
    """Merge (docs, scores) into the running top-k ``best``: score desc, then doc position asc."""
    if best is not None:
        docs = np.concatenate([best[0], docs])
        scores = np.concatenate([best[1], scores])
    if len(docs) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        docs, scores = docs[part], scores[part]
    order = np.lexsort((docs, -scores))
    return docs[order], scores[order]


def top_window(docs: np.ndarray, scores: np.ndarray, k: int, margin: float):
    """The ``(docs, scores)`` that may be in the top ``k`` when every score is off by at most
    ``margin / 2``: the best ``k`` and every one within ``margin`` of the k-th (unordered)."""
    if len(docs) <= k:
        return docs, scores
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    keep = scores >= kth - margin
    return docs[keep], scores[keep]


def window_ranges(doclens: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Contiguous document ranges of at most ``rows`` tokens each (a longer document alone)."""
    ends = np.cumsum(doclens, dtype=np.int64)
    out, a, base = [], 0, 0
    while a < len(ends):
        b = max(a + 1, int(np.searchsorted(ends, base + rows, side="right")))
        out.append((a, b))
        a, base = b, int(ends[b - 1])
    return out
