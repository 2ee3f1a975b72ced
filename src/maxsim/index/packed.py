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
