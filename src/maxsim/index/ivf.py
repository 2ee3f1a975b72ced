"""The inverted file of a PLAID index and the first stage that reads it (PLAID's stage 2).

The inverted file (for each centroid, the documents with a token there) is derived from a
segment's centroid ids when the segment is loaded and kept in memory: it is not stored, which
saves ~1-2 bytes per token on disk and cannot go stale.

A first stage proposes candidate documents for the final ranking: ``candidates(index, s, mask,
settings)`` -> global positions, where ``s`` (K, Lq) are the query's centroid scores, ``mask``
(n_docs,) the documents allowed (alive, in the subset) and ``settings`` the resolved search
settings (``n_ivf_probe``, ``centroid_score_threshold``, ``n_full_scores``, ``keep``: how many
to propose at most). ``maxsim.index.plaid.FIRST_STAGES`` maps ``PlaidParams.first_stage`` names
to them.
"""

from __future__ import annotations

import numpy as np
import torch

from maxsim.index.packed import segment_max


def inverted_lists(codes: np.ndarray, doclens: np.ndarray, n_c: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (n_c + 1,) int64 into docs (int32): each centroid's documents, in order."""
    doc_of_token = np.repeat(np.arange(len(doclens), dtype=np.int32), doclens)
    order = np.argsort(codes, kind="stable")  # by centroid, then token (= document) order
    cells, docs = codes[order], doc_of_token[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (cells[1:] != cells[:-1]) | (docs[1:] != docs[:-1])
    offsets = np.zeros(n_c + 1, dtype=np.int64)
    np.cumsum(np.bincount(cells[first], minlength=n_c), out=offsets[1:])
    return offsets, docs[first]


def ivf_candidates(index, s: np.ndarray, mask: np.ndarray, settings: dict) -> np.ndarray:
    """Documents in the inverted lists of the ``n_ivf_probe`` best centroids of each query vector,
    scored from the inverted file with centroid pruning (per query vector, the best score among the
    document's centroids that are probed or reach ``centroid_score_threshold``, floor 0); the best
    ``keep`` are returned."""
    n_c = s.shape[0]
    n_probe = max(1, min(int(settings["n_ivf_probe"]), n_c))
    probed = np.ones(n_c, dtype=bool)
    if n_probe < n_c:  # the best cells of each query vector (torch.topk: 10x np.argpartition along axis 0)
        probed[:] = False
        probed[torch.topk(torch.from_numpy(s.T), n_probe, dim=1, sorted=False).indices.reshape(-1).numpy()] = True
    cells = np.nonzero(probed | (s.max(axis=1) >= settings["centroid_score_threshold"]))[0]
    filtered = not mask.all()
    all_cand, all_scores = [], []
    for base, seg in zip(index.bases, index.segments):
        off, ivf_docs = seg.arrays["ivf_offsets"], seg.arrays["ivf_docs"]
        starts = off[cells]
        lens = off[cells + 1] - starts
        total = int(lens.sum())
        if total == 0:
            continue
        pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(total)
        docs = ivf_docs[pos].astype(np.int64)
        cell_of = np.repeat(cells, lens)
        if filtered:  # drop postings outside the subset before grouping: the work shrinks with it
            inside = mask[base + docs]
            docs, cell_of = docs[inside], cell_of[inside]
            if not len(docs):
                continue
        # group the (document, centroid) pairs by document: one max per document and query vector
        order = np.argsort(docs, kind="stable")
        docs, cell_of = docs[order], cell_of[order]
        first = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        uniq = docs[first]
        keep = np.logical_or.reduceat(probed[cell_of], first) & mask[base + uniq]
        if not keep.any():
            continue
        # a torch segment max over the gathered rows: 5x numpy's maximum.reduceat along axis 0
        pairs = torch.from_numpy(s).index_select(0, torch.from_numpy(cell_of))
        maxima = segment_max(pairs, torch.from_numpy(np.diff(np.r_[first, len(docs)])))[torch.from_numpy(keep)]
        all_cand.append(uniq[keep] + base)
        all_scores.append(maxima.clamp_(min=0).sum(1).numpy())
    if not all_cand:
        return np.zeros(0, np.int64)
    cand, scores = np.concatenate(all_cand), np.concatenate(all_scores)
    return cand[top(scores, settings["keep"], cand)] if len(cand) > settings["keep"] else cand


def top(scores: np.ndarray, n: int, cand: np.ndarray) -> np.ndarray:
    """Positions of the ``n`` best scores (ties: lower candidate position), unordered."""
    if len(scores) <= n:
        return np.arange(len(scores))
    return np.lexsort((cand, -scores))[:n]
