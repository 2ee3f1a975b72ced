"""Choosing the dense weight ``alpha`` of convex fusion on judged queries (``maxsim evaluate --tune-fusion``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from maxsim.evaluation.metrics import ndcg_at_k, per_query_metrics
from maxsim.search.fusion import convex_fusion

GRID = tuple(round(i / 20, 2) for i in range(21))  # alpha = 0, 0.05, ..., 1


def tune_alpha(dense: Mapping[str, Sequence], lexical: Mapping[str, Sequence], relevant_docs: Mapping,
               lower: Mapping[str, float] | None = None, k: int = 10,
               grid: Sequence[float] = GRID) -> tuple[float, dict[float, float]]:
    """The ``alpha`` of ``grid`` whose convex fusion of ``dense`` and ``lexical`` (query id -> ``[(doc,
    score)]``) has the best mean nDCG@``k`` over the judged queries; ties go to the alpha nearest 0.5.
    ``lower``: query id -> the dense ranker's least score (default 0; BM25's is 0). Returns the alpha
    and ``{alpha: mean nDCG@k}``."""
    functions = {"ndcg": (ndcg_at_k, k)}
    means = {}
    for alpha in grid:
        fused = {q: convex_fusion([dense[q], lexical.get(q, [])], [alpha, 1 - alpha],
                                  [(lower or {}).get(q, 0.0), 0.0]) for q in dense}
        values = per_query_metrics(fused, relevant_docs, functions)
        means[alpha] = sum(v["ndcg"] for v in values.values()) / max(len(values), 1)
    best = max(means.values())
    return min((a for a, v in means.items() if v == best), key=lambda a: abs(a - 0.5)), means
