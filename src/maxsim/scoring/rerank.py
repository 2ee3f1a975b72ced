"""Rerank candidate documents of each query by exact MaxSim."""

from __future__ import annotations

from maxsim.scoring.maxsim import maxsim


def rerank(query_embeddings, documents_embeddings, documents_ids=None, k: int | None = None):
    """Order each query's candidates by MaxSim.

    ``query_embeddings``: list of Nq arrays (Lq_i, D). ``documents_embeddings``: list of Nq lists,
    the candidates of query i as arrays (Ld_j, D). ``documents_ids``: same nesting, any ids
    (default: candidate positions). Returns, per query, ``[(id, score), ...]`` best first,
    at most ``k`` of them; scores are Python floats.
    """
    if len(query_embeddings) != len(documents_embeddings):
        raise ValueError(f"rerank got {len(query_embeddings)} queries but {len(documents_embeddings)} "
                         "candidate lists: pass one list of candidates per query.")
    if documents_ids is not None and len(documents_ids) != len(documents_embeddings):
        raise ValueError("documents_ids must have one list of ids per query.")
    results = []
    for i, (query, candidates) in enumerate(zip(query_embeddings, documents_embeddings)):
        ids = list(range(len(candidates))) if documents_ids is None else list(documents_ids[i])
        if len(ids) != len(candidates):
            raise ValueError(f"query {i}: {len(ids)} ids for {len(candidates)} candidate documents.")
        if not candidates:
            results.append([])
            continue
        scores = maxsim([query], candidates)[0]
        order = sorted(range(len(ids)), key=lambda j: (-scores[j], j))
        results.append([(ids[j], float(scores[j])) for j in order[:k]])
    return results
