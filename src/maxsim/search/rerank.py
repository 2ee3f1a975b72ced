"""Rerank each query's candidate documents by exact MaxSim: from texts (with a model) or from embeddings.

Candidate texts are scored the way a collection scores documents: a text longer than the model's
document length is split into passages (``maxsim.io.chunking``, the settings of ``Retriever.create``'s
``passages``), each passage is scored, and the best one gives the candidate's score and is reported.
PyLate's ``rank.rerank`` keywords (``documents_ids``, ``queries_embeddings``, ``documents_embeddings``,
``device``) are accepted and its result shape is returned: per query ``[{"id", "score"}, ...]``.
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm.auto import tqdm

from maxsim.errors import InvalidInputError
from maxsim.scoring.maxsim import maxsim
from maxsim.search.passages import Encoder


def rerank(queries=None, documents=None, documents_ids=None, k: int | None = None, *, model=None,
           queries_embeddings=None, documents_embeddings=None, batch_size: int = 32,
           show_progress_bar: bool | None = None, device=None, passages: bool | dict = True,
           max_tokens: int | None = None) -> list[list[dict]]:
    """Order each query's candidates by MaxSim, best first.

    Two input forms, told apart by the items:
    - texts: ``queries`` a list of Nq strings (or one string), ``documents`` Nq lists of candidate
      strings (or one flat list for one query string), and ``model`` (a ``MultiVectorEncoder``).
      Queries are encoded with ``encode_query``; each distinct candidate text is split into passages
      (``passages``: True, False to cut at the model's length, or a dict as in ``Retriever.create``)
      and encoded once; a candidate scores its best passage. ``max_tokens``: score only each
      candidate's first ``max_tokens`` tokens (None: all). Memory: distinct candidates x tokens x dim
      x 4 bytes.
    - embeddings: ``queries`` Nq arrays (Lq_i, D), ``documents`` Nq lists of arrays (Ld_j, D);
      PyLate's names ``queries_embeddings`` / ``documents_embeddings`` are the same arguments.

    ``documents_ids``: same nesting as ``documents``, any ids (default: candidate positions 0..n-1).
    ``k``: keep at most ``k`` per query (default all). ``device``: where MaxSim runs.
    Returns per query ``[{"id": id, "score": float}, ...]``, ties in input order; for texts each
    result also has ``"passage": {"index", "start", "end"}``, the best passage's ordinal and
    character span in the candidate.
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
    spans = None
    if queries and isinstance(queries[0], str):
        queries, documents, spans = _encode(model, queries, documents, batch_size, show, passages, max_tokens)
    else:
        documents = [[[candidate] for candidate in candidates] for candidates in documents]
    results = []
    for q, (query, candidates, candidate_ids) in enumerate(tqdm(zip(queries, documents, ids), total=len(queries),
                                                                 desc="rerank", disable=not show)):
        scores, best = _best_passages(query, candidates, device)
        order = sorted(range(len(candidates)), key=lambda j: (-scores[j], j))[:k]
        results.append([_result(candidate_ids[j], scores[j], best[j], spans and spans[q][j]) for j in order])
    return results


def _best_passages(query, candidates: list[list], device) -> tuple[list[float], list[int]]:
    """Per candidate (a list of passage arrays) the best passage's MaxSim with ``query`` and its ordinal."""
    flat = [passage for passages in candidates for passage in passages]
    scores = np.asarray(maxsim([query], flat, device=device)[0] if flat else [], dtype=np.float32)
    best, ordinals, start = [], [], 0
    for passages in candidates:
        part = scores[start: start + len(passages)]
        start += len(passages)
        ordinals.append(int(np.argmax(part)) if len(part) else 0)
        best.append(float(part[ordinals[-1]]) if len(part) else 0.0)
    return best, ordinals


def _result(doc_id, score: float, passage: int, spans) -> dict:
    result = {"id": doc_id, "score": score}
    if spans:
        result["passage"] = {"index": passage, "start": spans[passage][0], "end": spans[passage][1]}
    return result


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


def _encode(model, queries: list, documents: list[list], batch_size: int, show: bool, passages, max_tokens):
    """Texts -> (query embeddings, per query per candidate its passages' embeddings, per query per
    candidate its passages' character spans); each distinct candidate split and encoded once."""

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
    settings = {"passages": Encoder.passage_settings(model, passages), "pool_factor": 1}
    cut = _truncated(distinct, model.tokenizer, max_tokens)
    encoded = Encoder(lambda: model, settings).encode(cut, batch_size, show) if distinct else None
    starts = np.cumsum([0] + [len(spans) for spans in encoded.spans]) if encoded else [0]
    by_text = {text: (encoded.vectors[starts[i]: starts[i + 1]], encoded.spans[i]) for i, text in enumerate(distinct)}
    query_embeddings = model.encode_query(queries, batch_size=batch_size, show_progress_bar=show)
    return (query_embeddings, [[by_text[text][0] for text in candidates] for candidates in documents],
            [[by_text[text][1] for text in candidates] for candidates in documents])


def _truncated(texts: list[str], tokenizer, max_tokens: int | None) -> list[str]:
    """``texts`` cut after their first ``max_tokens`` tokens (None: whole)."""
    if max_tokens is None:
        return texts
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInputError(f"max_tokens must be a positive int or None, got {max_tokens!r}.")
    offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    return [text[: spans[max_tokens - 1][1]] if len(spans) > max_tokens else text
            for text, spans in zip(texts, offsets)]
