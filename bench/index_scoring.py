"""Scoring from the codes against decompress-then-score, on the same candidates (bench/index.py).

For each query, PlaidIndex's default search runs up to its final stage (the ``n_full_scores``
candidates); those candidates' tokens are then ranked twice, each timed alone (best of 3):
- ``codes``: what the index does, ``maxsim.index.lut`` (per-query tables, embedding_bag, segment max);
- ``decompress``: the tokens decompressed to float32 (centroid + decoded residual, what
  ``get_embeddings`` returns) and scored by one GEMM and a segment max (``maxsim_packed``), the
  final stage this index had before it ranked from the codes.
Both rank the same vectors (up to the float16 tables' rounding), so their rankings should agree.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from maxsim.index.defaults import resolve_search_params, stage2_keep
from maxsim.index.ivf import top
from maxsim.index.lut import maxsim_codes, score_table
from maxsim.index.packed import maxsim_packed
from maxsim.index.packed_numpy import merge_topk, token_ranges
from maxsim.index.plaid import FIRST_STAGES


def _best(fn, repeats=3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _candidates(index, q, s, k):
    sp = resolve_search_params(len(index), k, index.params.search_settings(), False)
    sp["keep"] = stage2_keep(sp["n_full_scores"], len(index))
    cand = FIRST_STAGES[index.params.first_stage](index, s, np.ones(len(index), bool), sp)
    if len(cand) > sp["n_full_scores"]:
        cand = cand[top(index._centroid_scores(cand, s), sp["n_full_scores"], cand)]
    return cand


@torch.inference_mode()
def compare(index, queries, truth, coll=None, k: int = 10) -> list[dict]:
    """Rows {"method", "ms" (per query, final stage only), "tokens" (per query), "recall10" (vs
    ``truth``), "ndcg10" (with ``coll``), "same_top10"} for the two methods."""
    ids = index.ids()
    codec = index.codec
    out = {"codes": ([], []), "decompress": ([], [])}
    n_tokens = []
    for q in queries:
        s = np.ascontiguousarray((torch.from_numpy(q) @ torch.from_numpy(codec.centroids).T).numpy().T)
        cand = np.sort(_candidates(index, q, s, k))
        (seg, local, _), = list(index._per_segment(cand))  # one segment (the bench builds in one add)
        tok = token_ranges(seg.offsets, local)
        codes, residuals = np.asarray(seg.arrays["codes"][tok]), np.asarray(seg.arrays["residuals"][tok])
        lens = seg.doclens[local]
        n_tokens.append(len(tok))
        methods = {
            "codes": lambda q=q, s=s, codes=codes, residuals=residuals, lens=lens: maxsim_codes(
                score_table(codec.quantizer.codebook, q, s), codes, residuals, np.r_[0, np.cumsum(lens)],
                np.arange(len(lens))),
            "decompress": lambda q=q, codes=codes, residuals=residuals, lens=lens: maxsim_packed(
                [q], codec.decompress(codes, residuals), lens)[0],
        }
        for name, fn in methods.items():
            seconds, scores = _best(fn)
            out[name][0].append(seconds * 1000)
            out[name][1].append([ids[int(d)] for d in merge_topk(None, cand, scores, k)[0]])
    rows = []
    for name, (ms, hits) in out.items():
        row = {"method": name, "ms": float(np.mean(ms)), "tokens": float(np.mean(n_tokens)),
               "recall10": float(np.mean([len(set(h) & set(t[:k])) / k for h, t in zip(hits, truth)])),
               "same_top10": float(np.mean([a == b for a, b in zip(hits, out["decompress"][1])]))}
        if coll is not None:
            import index_data
            row["ndcg10"] = index_data.ndcg(hits, coll)
        rows.append(row)
    return rows
