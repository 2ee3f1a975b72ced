"""Exact MaxSim retrieval over a whole corpus, scored with the reference card's metrics."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from maxsim.errors import InvalidInputError
from maxsim.evaluation.loaders import normalize_collection
from maxsim.evaluation.metrics import DEFAULT_K, evaluate_rankings, max_k, metric_functions
from maxsim.scoring import maxsim, topk


class InformationRetrievalEvaluator:
    """Evaluate a ``MultiVectorEncoder`` on one collection: ``evaluator(model)`` -> flat metric dict.

    ``queries`` {id: text}; ``corpus`` {id: text or {"title", "text"}}; ``relevant_docs``
    {query_id: {doc_id: grade}} (a set or list of doc ids means grade 1). Queries without a relevant
    document are skipped (see ``loaders.normalize_collection`` for the other checks). Keys look like
    ``f"{name}_MaxSim_ndcg@10"``; ``primary_metric`` names nDCG at the largest cutoff.

    The corpus is encoded once, ``corpus_chunk_size`` documents at a time; each chunk is scored against
    all queries and only a running top-k (k = deepest cutoff, 100 for MAP@100) is kept, so memory is
    bounded by one chunk's vectors (2,000 docs x 180 tokens x 384 dims x 4 bytes ~ 0.55 GB).
    Ties are broken by document id ascending, as sentence-transformers does.
    """

    def __init__(self, queries: Mapping[str, str], corpus: Mapping, relevant_docs: Mapping, name: str = "",
                 batch_size: int = 32, show_progress_bar: bool | None = None, corpus_chunk_size: int = 2000,
                 accuracy_at_k=DEFAULT_K["accuracy"], precision_recall_at_k=DEFAULT_K["precision_recall"],
                 ndcg_at_k=DEFAULT_K["ndcg"], mrr_at_k=DEFAULT_K["mrr"], map_at_k=DEFAULT_K["map"],
                 skip_unknown_docs: bool = False):
        if corpus_chunk_size <= 0:
            raise InvalidInputError(f"corpus_chunk_size must be positive, got {corpus_chunk_size}.")
        relevant_docs = {q: (g if isinstance(g, Mapping) else dict.fromkeys(g, 1)) for q, g in relevant_docs.items()}
        self.queries, corpus, self.relevant_docs = normalize_collection(queries, corpus, relevant_docs,
                                                                        skip_unknown_docs)
        self.doc_ids = sorted(corpus)  # scoring in id order makes "lower column" ties mean "lower id"
        self.documents = [corpus[i] for i in self.doc_ids]
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.corpus_chunk_size = corpus_chunk_size
        self.functions = metric_functions(accuracy_at_k, precision_recall_at_k, ndcg_at_k, mrr_at_k, map_at_k)
        self.primary_metric = f"{name}_MaxSim_ndcg@{max(ndcg_at_k)}" if name else f"MaxSim_ndcg@{max(ndcg_at_k)}"

    def __call__(self, model) -> dict[str, float]:
        """Retrieve with ``model`` and return ``{f"{name}_MaxSim_{metric}@{k}": mean value}``. A torch
        model is evaluated in eval mode (no dropout) and put back in its previous mode."""
        training = isinstance(model, torch.nn.Module) and model.training
        if training:
            model.eval()
        try:
            return evaluate_rankings(self.rank(model), self.relevant_docs, self.name, "MaxSim", self.functions)
        finally:
            if training:
                model.train()

    def rank(self, model, k: int | None = None) -> dict[str, list[tuple[str, float]]]:
        """Exact MaxSim top-``k`` (default: the deepest cutoff) of every query over the whole corpus:
        ``{query_id: [(doc_id, score), ...]}`` best first, scores as Python floats."""
        k = min(k or max_k(self.functions), len(self.doc_ids))
        show = self.show_progress_bar if self.show_progress_bar is not None else sys.stderr.isatty()
        query_vectors = model.encode_query(list(self.queries.values()), batch_size=self.batch_size,
                                           show_progress_bar=show)
        best_idx = np.zeros((len(query_vectors), 0), dtype=np.int64)
        best_scores = np.zeros((len(query_vectors), 0), dtype=np.float32)
        starts = range(0, len(self.documents), self.corpus_chunk_size)
        for start in tqdm(starts, desc=f"evaluate {self.name or 'corpus'}", unit="chunk", disable=not show):
            chunk = model.encode_document(self.documents[start: start + self.corpus_chunk_size],
                                          batch_size=self.batch_size, show_progress_bar=show)
            scores = maxsim(query_vectors, chunk)  # (Nq, chunk) float32
            idx, top = topk(scores, k)
            # Running best first, then this chunk: equal scores keep ascending global position (= id).
            merged_idx = np.concatenate([best_idx, idx + start], axis=1)
            merged_scores = np.concatenate([best_scores, top], axis=1)
            order, best_scores = topk(merged_scores, k)
            best_idx = np.take_along_axis(merged_idx, order, axis=1)
        return {qid: [(self.doc_ids[j], float(s)) for j, s in zip(row_idx, row_scores)]
                for qid, row_idx, row_scores in zip(self.queries, best_idx, best_scores)}
