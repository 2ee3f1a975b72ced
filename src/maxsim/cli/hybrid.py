"""Metrics of the retriever's rankings (hybrid fusion, ColBERT-PRF) for ``maxsim evaluate``, and the
choice of convex fusion's ``alpha`` on judged queries (``--tune-fusion``)."""

from __future__ import annotations

import contextlib
import tempfile


@contextlib.contextmanager
def collection_retriever(evaluator, model, model_name: str):
    """A temporary hybrid ``Retriever`` (exact MaxSim + BM25) holding ``evaluator``'s corpus as whole
    documents, as the evaluator scores them."""
    from maxsim.evaluation.loaders import document_text
    from maxsim.search import Retriever

    with tempfile.TemporaryDirectory(prefix="maxsim-evaluate-") as folder:
        with Retriever.create(folder + "/index", model, index="exact", hybrid=True, model_name=model_name,
                              passages=False) as retriever:
            retriever.add([document_text(d) for d in evaluator.documents], ids=evaluator.doc_ids,
                          batch_size=evaluator.batch_size, show_progress_bar=evaluator.show_progress_bar)
            yield retriever


def search_metrics(evaluator, model, model_name: str, hybrid: bool, fusion: str = "rrf", alpha: float | None = None,
                   prf: bool = False) -> dict[str, float]:
    """Rank every query with ``Retriever.search`` (``hybrid``, ``fusion``, ``alpha``, ``prf``) and score
    the rankings with the evaluator's metrics; keys look like ``f"{name}_Hybrid_ndcg@10"`` (``MaxSim`` when
    not hybrid, ``PRF`` appended with prf)."""
    from maxsim.evaluation import evaluate_rankings
    from maxsim.evaluation.metrics import max_k

    depth = min(max_k(evaluator.functions), len(evaluator.doc_ids))
    query_ids = list(evaluator.queries)
    with collection_retriever(evaluator, model, model_name) as retriever:
        hits = retriever.search([evaluator.queries[q] for q in query_ids], k=depth, hybrid=hybrid, fusion=fusion,
                                alpha=alpha, prf=prf or None)
    rankings = {q: [(hit.id, hit.score) for hit in found] for q, found in zip(query_ids, hits)}
    score = ("Hybrid" if hybrid else "MaxSim") + ("PRF" if prf else "")
    return evaluate_rankings(rankings, evaluator.relevant_docs, evaluator.name, score, evaluator.functions)


def tuned_alpha(evaluator, model, model_name: str) -> tuple[float, dict[float, float]]:
    """``evaluation.fusion.tune_alpha`` on ``evaluator``'s judged queries: the dense (exact MaxSim) and
    BM25 rankings of the retriever, each ``FUSION_DEPTH`` deep, fused as ``search`` fuses them."""
    from maxsim.evaluation.fusion import tune_alpha
    from maxsim.search.fusion import FUSION_DEPTH, dense_floor

    query_ids = list(evaluator.queries)
    texts = [evaluator.queries[q] for q in query_ids]
    with collection_retriever(evaluator, model, model_name) as retriever:
        dense = retriever.search(texts, k=FUSION_DEPTH)
        with retriever.versions.reading() as (snap, _):
            lexical = retriever.bm25.get(snap.bm25, snap.all_texts).top(texts, FUSION_DEPTH)
        floors = [dense_floor(v) for v in retriever.model.encode_query(texts)]
    return tune_alpha({q: [(h.id, h.score) for h in found] for q, found in zip(query_ids, dense)},
                      dict(zip(query_ids, lexical)), evaluator.relevant_docs, dict(zip(query_ids, floors)))
