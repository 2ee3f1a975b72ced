"""Fusing ranked lists (MaxSim, BM25, ...) into one: reciprocal-rank and normalized-score fusion.

A ranking is a list of ``(id, score)`` pairs, best first. Nothing here is tuned per collection:
RRF uses the customary constant 60, score fusion weighs rankers equally unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from maxsim.errors import InvalidInputError

Ranking = Sequence[tuple[str, float]]
RRF_K = 60
# Candidates each ranker contributes to a fusion, whatever k is.
FUSION_DEPTH = 100
METHODS = ("rrf", "score")


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


def fuse(rankings: Sequence[Ranking], method: str = "rrf") -> list[tuple[str, float]]:
    """``method``: "rrf" (reciprocal-rank fusion, k=60) or "score" (min-max normalized, equal weights)."""
    if method == "rrf":
        return reciprocal_rank_fusion(rankings)
    if method == "score":
        return score_fusion(rankings)
    raise InvalidInputError(f"fusion must be one of {METHODS}, got {method!r}.")


def _weights(rankings: Sequence[Ranking], weights, default: float) -> list[float]:
    if weights is None:
        return [default] * len(rankings)
    if len(weights) != len(rankings):
        raise InvalidInputError(f"got {len(weights)} weights for {len(rankings)} rankings: "
                                "pass one weight per ranking.")
    return [float(w) for w in weights]


def _sorted(fused: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda item: -item[1])  # stable: ties keep first-seen order
