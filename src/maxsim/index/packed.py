"""MaxSim over packed token matrices: documents stored back to back in one (n_tokens, dim) array.

``maxsim.scoring.maxsim`` takes one array per document and pads them into a batch; an index keeps
each segment's vectors contiguous, so one GEMM of all tokens against all query vectors plus a
segment max (``torch.segment_reduce``) computes the same scores without padding or per-document
tensors (~10x faster for single queries here). ``tests/test_index_exact.py`` checks it against
``maxsim.scoring.maxsim``.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.inference_mode()
def segment_max_sum(sim: torch.Tensor, lengths: np.ndarray, widths: list[int] | None = None) -> np.ndarray:
    """``sim``: (n_tokens, n_cols) similarities of packed documents of ``lengths`` tokens.
    Returns (n_docs,) sums over columns of per-document maxima, or (n_queries, n_docs) when
    ``widths`` splits the columns into queries. A document without tokens scores 0."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n_docs = len(lengths)
    n_q = 1 if widths is None else len(widths)
    out = np.zeros((n_q, n_docs), dtype=np.float32)
    nz = lengths > 0
    if n_docs and nz.any():
        maxima = torch.segment_reduce(sim, "max", lengths=torch.from_numpy(lengths[nz]), axis=0)
        if widths is None:
            out[0, nz] = maxima.sum(1).numpy()
        else:
            start = 0
            for qi, w in enumerate(widths):
                out[qi, nz] = maxima[:, start: start + w].sum(1).numpy()
                start += w
    return out[0] if widths is None else out


@torch.inference_mode()
def maxsim_packed(queries: list[np.ndarray], vectors, lengths: np.ndarray) -> np.ndarray:
    """MaxSim of each query (Lq_i, dim) with each packed document -> (n_queries, n_docs) float32."""
    v = vectors if isinstance(vectors, torch.Tensor) else torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    q = torch.from_numpy(np.concatenate(queries).astype(np.float32, copy=False))
    sim = v.float() @ q.T
    return segment_max_sum(sim, lengths, [len(x) for x in queries])


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


def chunk_ranges(doclens: np.ndarray, budget_tokens: int) -> list[tuple[int, int]]:
    """Contiguous document ranges of at most ``budget_tokens`` tokens (a longer document alone)."""
    ranges, start, total = [], 0, 0
    for i, n in enumerate(doclens.tolist()):
        if total and total + n > budget_tokens:
            ranges.append((start, i))
            start, total = i, 0
        total += n
    if start < len(doclens):
        ranges.append((start, len(doclens)))
    return ranges
