"""Metrics of the fused BM25 + MaxSim ranking, for ``maxsim evaluate --hybrid``."""

from __future__ import annotations

import tempfile


def fused_metrics(evaluator, model, model_name: str) -> dict[str, float]:
    """Index ``evaluator``'s corpus in a temporary hybrid ``Retriever`` (exact MaxSim + BM25), rank
    every query with reciprocal-rank fusion, and score the rankings with the evaluator's metrics.
    Keys look like ``f"{name}_Hybrid_ndcg@10"``."""
    from maxsim.evaluation import evaluate_rankings
    from maxsim.evaluation.loaders import document_text
    from maxsim.evaluation.metrics import max_k
    from maxsim.search import Retriever

    depth = min(max_k(evaluator.functions), len(evaluator.doc_ids))
    with tempfile.TemporaryDirectory(prefix="maxsim-evaluate-") as folder:
        with Retriever.create(folder + "/index", model, index="exact", hybrid=True, model_name=model_name,
                              passages=False) as retriever:  # whole documents, as the evaluator scores them
            retriever.add([document_text(d) for d in evaluator.documents], ids=evaluator.doc_ids,
                          batch_size=evaluator.batch_size, show_progress_bar=evaluator.show_progress_bar)
            query_ids = list(evaluator.queries)
            hits = retriever.search([evaluator.queries[q] for q in query_ids], k=depth, hybrid=True)
    rankings = {q: [(hit.id, hit.score) for hit in found] for q, found in zip(query_ids, hits)}
    return evaluate_rankings(rankings, evaluator.relevant_docs, evaluator.name, "Hybrid", evaluator.functions)
