"""``maxsim.rerank``: the text form against the embedding form and a NumPy MaxSim, PyLate's keywords,
one-query convenience, and the errors."""

import numpy as np
import pytest

import maxsim
from maxsim.errors import InvalidInputError
from maxsim.search.rerank import rerank

QUERIES = ["heat transfer in boundary layers", "buckling of thin cylindrical shells"]
CANDIDATES = [
    ["The boundary layer heat transfer rate rises with Mach number.", "Shells buckle under axial load.",
     "A note on supersonic wings.", "The boundary layer heat transfer rate rises with Mach number."],
    ["Shells buckle under axial load.", "Thin cylinders under external pressure buckle early.", "Heat flux."],
]
IDS = [["a", "b", "c", "a2"], ["b", "d", "e"]]


def numpy_maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """Sum over query vectors of the best dot product with a document vector (float64)."""
    return float((query.astype(np.float64) @ document.astype(np.float64).T).max(axis=1).sum())


def test_text_form_matches_numpy_maxsim(tiny_model):
    ranked = rerank(QUERIES, CANDIDATES, documents_ids=IDS, model=tiny_model)
    for query, candidates, ids, hits in zip(QUERIES, CANDIDATES, IDS, ranked):
        q = tiny_model.encode_query([query])[0]
        expected = {doc_id: numpy_maxsim(q, d) for doc_id, d in zip(ids, tiny_model.encode_document(candidates))}
        assert sorted(h["id"] for h in hits) == sorted(ids)
        assert [h["score"] for h in hits] == pytest.approx([expected[h["id"]] for h in hits], rel=1e-5, abs=1e-5)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    first = {h["id"]: h["score"] for h in ranked[0]}
    assert first["a"] == first["a2"]  # the same text, encoded once, scores the same
    order = [h["id"] for h in ranked[0]]
    assert order.index("a") == order.index("a2") - 1  # ties keep input order


def test_embedding_form_and_pylate_keywords_agree_with_text_form(tiny_model):
    by_text = rerank(QUERIES, CANDIDATES, IDS, k=2, model=tiny_model)
    queries = tiny_model.encode_query(QUERIES)
    documents = [tiny_model.encode_document(c) for c in CANDIDATES]
    positional = rerank(queries, documents, IDS, k=2)
    pylate = rerank(documents_ids=IDS, queries_embeddings=queries, documents_embeddings=documents, device="cpu")
    assert [[h["id"] for h in hits] for hits in by_text] == [[h["id"] for h in hits] for hits in positional]
    assert [hits[:2] for hits in pylate] == positional
    assert all(set(hit) == {"id", "score"} and isinstance(hit["score"], float) for hits in pylate for hit in hits)
    assert maxsim.rerank is rerank


def test_one_query_string_and_default_ids(tiny_model):
    one = rerank(QUERIES[1], CANDIDATES[1], model=tiny_model)
    many = rerank(QUERIES[1:], CANDIDATES[1:], model=tiny_model)
    assert one == many and sorted(h["id"] for h in one[0]) == [0, 1, 2]
    assert rerank(QUERIES[:1], [[]], model=tiny_model) == [[]]
    assert rerank([], [], model=tiny_model) == []


@pytest.mark.parametrize("call, message", [
    (lambda m: rerank(QUERIES, CANDIDATES), "no model"),
    (lambda m: rerank(QUERIES, CANDIDATES[:1], model=m), "2 queries but 1 candidate lists"),
    (lambda m: rerank(QUERIES, CANDIDATES, [["a"], ["b"]], model=m), "query 0: 1 ids for 4 candidate"),
    (lambda m: rerank(QUERIES, [["x", 3], ["y"]], model=m), r"documents\[0\]\[1\] is int"),
    (lambda m: rerank(QUERIES, CANDIDATES, k=0, model=m), "k must be a positive int"),
    (lambda m: rerank(QUERIES, CANDIDATES, queries_embeddings=[], model=m), "both queries and queries_embeddings"),
    (lambda m: rerank(documents=CANDIDATES, model=m), "needs queries"),
])
def test_errors_name_the_problem(tiny_model, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(tiny_model)
