"""Ranking metrics with the definitions of sentence-transformers' IR evaluator (graded nDCG as trec_eval).

A document is *relevant* to a query when its grade in ``relevant_docs`` is > 0. A ranking is a list of
document ids, best first; its ties must already be broken (``rank`` breaks them by document id).
Every function takes one query's ``ranking`` (list[str]) and ``grades`` (dict doc_id -> int) and
returns a float; ``evaluate_rankings`` averages them over the ranked queries that have a relevant document.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

from maxsim.errors import InvalidInputError

DEFAULT_K = {"accuracy": (1, 3, 5, 10), "precision_recall": (1, 3, 5, 10), "ndcg": (10,), "mrr": (10,),
             "map": (100,)}


def _relevant(grades: Mapping[str, float]) -> set[str]:
    return {doc for doc, grade in grades.items() if grade > 0}


def accuracy_at_k(ranking: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """Success@k: 1.0 when at least one relevant document is among the first k, else 0.0."""
    relevant = _relevant(grades)
    return float(any(doc in relevant for doc in ranking[:k]))


def precision_at_k(ranking: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """(relevant documents among the first k) / k; k, not len(ranking), even when fewer are ranked."""
    relevant = _relevant(grades)
    return sum(doc in relevant for doc in ranking[:k]) / k


def recall_at_k(ranking: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """(relevant documents among the first k) / (number of relevant documents); 0.0 when there are none."""
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    return sum(doc in relevant for doc in ranking[:k]) / len(relevant)


def ndcg_at_k(ranking: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """Graded nDCG@k (trec_eval ``ndcg_cut``): DCG = sum over ranks r=1..k of grade / log2(r + 1), with
    grades <= 0 counting 0, divided by the DCG of the positive grades sorted descending. 0.0 without
    relevant documents. On binary grades this equals sentence-transformers' nDCG."""
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    if idcg == 0:
        return 0.0
    dcg = sum(max(grades.get(doc, 0), 0) / math.log2(r + 2) for r, doc in enumerate(ranking[:k]))
    return dcg / idcg


def mrr_at_k(ranking: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """Reciprocal rank 1/r of the first relevant document within the first k; 0.0 if none."""
    relevant = _relevant(grades)
    for r, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            return 1.0 / r
    return 0.0


def average_precision_at_k(ranking: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """AP@k as sentence-transformers computes MAP@k: sum of precision@r over the ranks r <= k holding a
    relevant document, divided by min(k, number of relevant documents) (trec_eval's ``map_cut``
    divides by the number of relevant documents; they differ when more than k are relevant)."""
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for r, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            hits += 1
            total += hits / r
    return total / min(k, len(relevant))


def metric_functions(accuracy_at: Iterable[int] = DEFAULT_K["accuracy"],
                     precision_recall_at: Iterable[int] = DEFAULT_K["precision_recall"],
                     ndcg_at: Iterable[int] = DEFAULT_K["ndcg"], mrr_at: Iterable[int] = DEFAULT_K["mrr"],
                     map_at: Iterable[int] = DEFAULT_K["map"]) -> dict[str, tuple]:
    """Ordered ``{"accuracy@1": (accuracy_at_k, 1), ...}``: the reference card's rows and their order."""
    table = [("accuracy", accuracy_at_k, accuracy_at), ("precision", precision_at_k, precision_recall_at),
             ("recall", recall_at_k, precision_recall_at), ("ndcg", ndcg_at_k, ndcg_at),
             ("mrr", mrr_at_k, mrr_at), ("map", average_precision_at_k, map_at)]
    out = {}
    for label, fn, ks in table:
        for k in ks:
            if not isinstance(k, int) or k <= 0:
                raise InvalidInputError(f"{label}@k needs positive integer k values, got {k!r}.")
            out[f"{label}@{k}"] = (fn, k)
    return out


def max_k(functions: Mapping[str, tuple]) -> int:
    """The deepest rank any of ``functions`` (from ``metric_functions``) looks at."""
    return max(k for _, k in functions.values())


def rank(hits: Iterable[tuple[str, float]]) -> list[str]:
    """``[(doc_id, score), ...]`` in any order -> doc ids by score descending, ties by doc id ascending
    (the order sentence-transformers uses)."""
    return [doc for doc, _ in sorted(hits, key=lambda hit: (-hit[1], hit[0]))]


def per_query_metrics(rankings: Mapping[str, Sequence[tuple[str, float]]],
                      relevant_docs: Mapping[str, Mapping[str, float]],
                      functions: Mapping[str, tuple] | None = None) -> dict[str, dict[str, float]]:
    """``{query_id: {"ndcg@10": value, ...}}`` for every query of ``rankings`` that has a relevant
    document (grade > 0) in ``relevant_docs``; others are skipped. A judged query missing from
    ``rankings`` was not asked (e.g. it has no query text) and is skipped with a warning; give a query
    that retrieved nothing an empty ranking to score it 0.0. A document listed twice in one ranking
    raises ValueError."""
    functions = functions or metric_functions()
    judged = [qid for qid, grades in relevant_docs.items() if _relevant(grades)]
    _warn_unranked([qid for qid in judged if qid not in rankings], len(judged))
    out = {}
    for qid in judged:
        if qid not in rankings:
            continue
        grades = relevant_docs[qid]
        ranking = rank(rankings[qid])
        if len(set(ranking)) != len(ranking):
            duplicate = next(doc for doc in ranking if ranking.count(doc) > 1)
            raise InvalidInputError(f"the ranking of query {qid!r} lists document {duplicate!r} more than once.")
        out[qid] = {label: fn(ranking, grades, k) for label, (fn, k) in functions.items()}
    return out


def _warn_unranked(missing: list[str], judged: int) -> None:
    if missing:
        warnings.warn(f"{len(missing)} of {judged} judged queries have no ranking (e.g. {missing[0]!r}: no query "
                      "text?) and are left out of the means; pass an empty ranking to count a query as 0.",
                      stacklevel=3)


def evaluate_rankings(rankings: Mapping[str, Sequence[tuple[str, float]]],
                      relevant_docs: Mapping[str, Mapping[str, float]], name: str = "",
                      score_function: str = "MaxSim", functions: Mapping[str, tuple] | None = None
                      ) -> dict[str, float]:
    """Mean of each metric over the ranked queries with a relevant document, keyed like the reference card:
    ``f"{name}_{score_function}_ndcg@10"`` (``f"{score_function}_ndcg@10"`` when ``name`` is empty).

    ``rankings``: query id -> ``[(doc_id, score), ...]`` (any order; ties broken by doc id).
    ``relevant_docs``: query id -> {doc_id: grade}. Raises ValueError if no query has a relevant document.
    """
    functions = functions or metric_functions()
    per_query = per_query_metrics(rankings, relevant_docs, functions)
    if not per_query:
        raise InvalidInputError("no query of rankings has a relevant document (grade > 0) in relevant_docs: "
                         "nothing to evaluate; check that the query ids of both match.")
    prefix = f"{name}_{score_function}_" if name else f"{score_function}_"
    return {prefix + label: sum(q[label] for q in per_query.values()) / len(per_query) for label in functions}


def mean_over_collections(results: Sequence[tuple[str, Mapping[str, float]]], name: str) -> dict[str, float]:
    """``[(collection_name, flat results), ...]`` -> ``{f"{name}_{metric}": unweighted mean over the
    collections}``; each flat key is ``f"{collection_name}_{metric}"``."""
    per_metric: dict[str, list[float]] = {}
    for collection, flat in results:
        for key, value in flat.items():
            per_metric.setdefault(key[len(collection) + 1:], []).append(value)
    return {f"{name}_{metric}": sum(values) / len(values) for metric, values in per_metric.items()}
