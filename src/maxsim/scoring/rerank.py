"""Rerank each query's candidate documents by exact MaxSim: from texts (with a model) or from embeddings.

PyLate's ``rank.rerank`` keywords (``documents_ids``, ``queries_embeddings``, ``documents_embeddings``,
``device``) are accepted and its result shape is returned: per query ``[{"id", "score"}, ...]``.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

from maxsim.errors import InvalidInputError
from maxsim.scoring.maxsim import maxsim


def rerank(queries=None, documents=None, documents_ids=None, k: int | None = None, *, model=None,
           queries_embeddings=None, documents_embeddings=None, batch_size: int = 32,
           show_progress_bar: bool | None = None, device=None) -> list[list[dict]]:
    """Order each query's candidates by MaxSim, best first.

    Two input forms, told apart by the items:
    - texts: ``queries`` a list of Nq strings (or one string), ``documents`` Nq lists of candidate
      strings (or one flat list for one query string), and ``model`` (a ``MultiVectorEncoder``).
      Queries are encoded with ``encode_query``, each distinct candidate text once with
      ``encode_document`` (``batch_size``, progress bar); memory: distinct candidates x tokens x dim x 4 bytes.
    - embeddings: ``queries`` Nq arrays (Lq_i, D), ``documents`` Nq lists of arrays (Ld_j, D);
      PyLate's names ``queries_embeddings`` / ``documents_embeddings`` are the same arguments.

    ``documents_ids``: same nesting as ``documents``, any ids (default: candidate positions 0..n-1).
    ``k``: keep at most ``k`` per query (default all). ``device``: where MaxSim runs.
    Returns per query ``[{"id": id, "score": float}, ...]``, ties in input order.
    """
    queries = _alias(queries, queries_embeddings, "queries", "queries_embeddings")
    documents = _alias(documents, documents_embeddings, "documents", "documents_embeddings")
    if isinstance(queries, str):
        queries, documents = [queries], [documents]
        documents_ids = None if documents_ids is None else [documents_ids]
    queries, documents = list(queries), [list(c) for c in documents]
    ids = _check_ids(documents, documents_ids, len(queries))
    _check_k(k)
    show = show_progress_bar if show_progress_bar is not None else len(queries) > 8 and sys.stderr.isatty()
    if queries and isinstance(queries[0], str):
        queries, documents = _encode(model, queries, documents, batch_size, show)
    results = []
    for query, candidates, candidate_ids in tqdm(zip(queries, documents, ids), total=len(queries),
                                                 desc="rerank", disable=not show):
        scores = maxsim([query], candidates, device=device)[0] if candidates else []
        order = sorted(range(len(candidates)), key=lambda j: (-scores[j], j))[:k]
        results.append([{"id": candidate_ids[j], "score": float(scores[j])} for j in order])
    return results


def _alias(value, pylate_value, name: str, pylate_name: str):
    if value is not None and pylate_value is not None:
        raise InvalidInputError(f"rerank got both {name} and {pylate_name}: they are the same argument, pass one.")
    value = pylate_value if value is None else value
    if value is None:
        raise InvalidInputError(f"rerank needs {name} (texts or embeddings; PyLate's name: {pylate_name}).")
    return value


def _check_ids(documents: list[list], documents_ids, n_queries: int) -> list[list]:
    """Per query the candidate ids (positions when ``documents_ids`` is None), checked against ``documents``."""
    if len(documents) != n_queries:
        raise InvalidInputError(f"rerank got {n_queries} queries but {len(documents)} candidate lists: "
                                "pass one list of candidates per query.")
    if documents_ids is None:
        return [list(range(len(c))) for c in documents]
    if len(documents_ids) != n_queries:
        raise InvalidInputError(f"documents_ids has {len(documents_ids)} lists for {n_queries} queries: "
                                "pass one list of ids per query.")
    ids = [list(i) for i in documents_ids]
    for q, (query_ids, candidates) in enumerate(zip(ids, documents)):
        if len(query_ids) != len(candidates):
            raise InvalidInputError(f"query {q}: {len(query_ids)} ids for {len(candidates)} candidate documents.")
    return ids


def _check_k(k) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
        raise InvalidInputError(f"k must be a positive int or None (all candidates), got {k!r}.")


def _encode(model, queries: list, documents: list[list], batch_size: int, show: bool):
    """Texts -> (query embeddings, per-query candidate embeddings); each distinct candidate encoded once."""
    if model is None:
        raise InvalidInputError("rerank got texts but no model: pass model=MultiVectorEncoder(...), "
                                "or pass embeddings instead of texts.")
    for q, query in enumerate(queries):
        if not isinstance(query, str):
            raise InvalidInputError(f"queries[{q}] is {type(query).__name__}: pass all queries as texts or all "
                                    "as embeddings.")
    for q, candidates in enumerate(documents):
        for j, text in enumerate(candidates):
            if not isinstance(text, str):
                raise InvalidInputError(f"documents[{q}][{j}] is {type(text).__name__}, not str: with text queries "
                                        "pass candidate texts.")
    distinct = list(dict.fromkeys(text for candidates in documents for text in candidates))
    encoded = model.encode_document(distinct, batch_size=batch_size, show_progress_bar=show) if distinct else []
    by_text = dict(zip(distinct, encoded))
    query_embeddings = model.encode_query(queries, batch_size=batch_size, show_progress_bar=show)
    return query_embeddings, [[by_text[text] for text in candidates] for candidates in documents]
