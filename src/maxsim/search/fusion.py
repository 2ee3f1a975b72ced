"""Fusing ranked lists (MaxSim, BM25, ...) into one: reciprocal-rank, convex and normalized-score fusion.

A ranking is a list of ``(id, score)`` pairs, best first. RRF uses the customary constant 60;
convex fusion (Bruch, Gai, Ingber, ACM TOIS 2023) weighs the dense ranker's theoretical-min-max
normalised scores by ``alpha`` and BM25's by ``1 - alpha``, with ``DEFAULT_ALPHA`` chosen on
Cranfield's fit half and reported on the other collections (docs/search.md, "Fusion").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maxsim.errors import InvalidInputError

Ranking = Sequence[tuple[str, float]]
RRF_K = 60
# Candidates each ranker contributes to a fusion, whatever k is.
FUSION_DEPTH = 100
METHODS = ("rrf", "convex", "score")
DEFAULT_ALPHA = 0.75  # dense weight of convex fusion: the best on Cranfield's fit half (bench/quality.py --tune)


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = RRF_K,
                           weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """score(d) = sum over rankings r of w_r / (k + rank_r(d)), ranks from 1; a document absent from
    a ranking gets nothing from it. Returns ``(id, fused score)`` best first (ties: first seen first)."""
    if k < 0:
        raise InvalidInputError(f"the RRF constant k must be >= 0, got {k}.")
    weights = _weights(rankings, weights, default=1.0)
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (doc_id, _) in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return _sorted(fused)


def score_fusion(rankings: Sequence[Ranking], weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Min-max normalise each ranking's scores to [0, 1] over its own list (all equal -> 1), then
    sum with ``weights`` (default: equal, summing to 1); a document absent from a ranking gets 0
    from it. Returns ``(id, fused score)`` best first (ties: first seen first)."""
    weights = _weights(rankings, weights, default=1.0 / max(len(rankings), 1))
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        if not ranking:
            continue
        scores = [float(s) for _, s in ranking]
        low, span = min(scores), max(scores) - min(scores)
        for (doc_id, _), s in zip(ranking, scores):
            normalized = (s - low) / span if span > 0 else 1.0
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * normalized
    return _sorted(fused)


def convex_fusion(rankings: Sequence[Ranking], weights: Sequence[float],
                  lower: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """score(d) = sum over rankings r of w_r * (s_r(d) - m_r) / (M_r - m_r): theoretical min-max
    (TMM) normalisation, ``m_r`` = ``lower[r]``, the least score ranker r can give (default 0),
    ``M_r`` the best score of its list (M_r == m_r -> 1); a document absent from a ranking gets 0
    from it. Returns ``(id, fused score)`` best first (ties: first seen first)."""
    weights = _weights(rankings, weights, default=0.0)
    lower = [0.0] * len(rankings) if lower is None else [float(x) for x in lower]
    fused: dict[str, float] = {}
    for ranking, weight, low in zip(rankings, weights, lower):
        top = max((float(s) for _, s in ranking), default=low)
        for doc_id, s in ranking:
            normalized = (float(s) - low) / (top - low) if top > low else 1.0
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * normalized
    return _sorted(fused)


def dense_floor(query_vectors) -> float:
    """The least MaxSim ``query_vectors`` (n, dim) can score against unit-norm document vectors:
    -(sum of the query vectors' L2 norms), as each one's best dot product is >= -its norm."""
    return -float(np.linalg.norm(np.asarray(query_vectors, dtype=np.float32), axis=-1).sum())


def check_fusion(method: str, alpha: float | None) -> None:
    """Refuse an unknown ``method``, or an ``alpha`` outside [0, 1] or given without "convex"."""
    if method not in METHODS:
        raise InvalidInputError(f"fusion must be one of {METHODS}, got {method!r}.")
    if alpha is None:
        return
    if method != "convex":
        raise InvalidInputError(f"alpha weighs convex fusion only; got alpha={alpha!r} with fusion={method!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise InvalidInputError(f"alpha must be a number in [0, 1], got {alpha!r}.")


def fuse(rankings: Sequence[Ranking], method: str = "rrf", alpha: float | None = None,
         lower: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """``method``: "rrf" (reciprocal-rank fusion, k=60), "convex" (two rankings, dense first: weights
    ``alpha`` (default ``DEFAULT_ALPHA``) and 1 - alpha, TMM-normalised with the minima ``lower``) or
    "score" (min-max normalized over each list, equal weights)."""
    check_fusion(method, alpha)
    if method == "rrf":
        return reciprocal_rank_fusion(rankings)
    if method == "convex":
        alpha = DEFAULT_ALPHA if alpha is None else float(alpha)
        return convex_fusion(rankings, [alpha, 1.0 - alpha], lower)
    return score_fusion(rankings)


def _weights(rankings: Sequence[Ranking], weights, default: float) -> list[float]:
    if weights is None:
        return [default] * len(rankings)
    if len(weights) != len(rankings):
        raise InvalidInputError(f"got {len(weights)} weights for {len(rankings)} rankings: pass one weight per "
                                "ranking.")
    return [float(w) for w in weights]


def _sorted(fused: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda item: -item[1])  # stable: ties keep first-seen order
