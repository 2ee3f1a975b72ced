"""ColBERT-PRF: the expansion embeddings against a direct computation on a tiny collection, the second
search scoring the expanded query exactly, filters honoured, explain, CLI and HTTP."""

import json
import re
from collections import Counter

import faiss
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import DATA, MODELS
from maxsim.cli import app
from maxsim.errors import InvalidInputError
from maxsim.scoring import maxsim
from maxsim.search import Retriever
from maxsim.search.bm25 import tokenize
from maxsim.search.explain import token_vectors
from maxsim.search.prf import PRF, expand

QUERY = "flutter of panels at supersonic speed"
SMALL = PRF(fb_docs=2, clusters=6, expansion=3, beta=0.7)


@pytest.fixture(scope="module")
def collection(tmp_path_factory, tiny_model):
    with open(DATA / "cranfield" / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [json.loads(line) for line, _ in zip(f, range(40))]
    folder = tmp_path_factory.mktemp("prf") / "r"
    r = Retriever.create(folder, tiny_model, hybrid=True, model_name=str(MODELS / "st6-tiny-bert"), passages=False)
    r.add([d["text"] for d in corpus], ids=[d["_id"] for d in corpus],
          metadata=[{"half": i % 2} for i in range(len(corpus))])
    yield r, {d["_id"]: d["text"] for d in corpus}
    r.close()


def direct_expansion(model, passages, texts, prf):
    """The method computed by hand: k-means (faiss, the module's settings) of the passages' token
    vectors; the 10 nearest tokens vote with their word's stemmed term; idf from document counts."""
    vectors, terms = [], []
    for text in passages:
        encoded = token_vectors(model, text, "document")
        for position in np.flatnonzero(encoded["scored"]):
            vectors.append(encoded["vectors"][position])
            span = encoded["spans"][position]
            word = next((m.group() for m in re.finditer(r"(?u)\b\w\w+\b", text)
                         if span is not None and m.start() <= span[0] < m.end()), None)
            stems = tokenize([word])[0] if word else []
            terms.append(stems[0] if stems else None)
    points = np.array(vectors, dtype=np.float32)
    kmeans = faiss.Kmeans(points.shape[1], prf.clusters, niter=20, seed=1234, min_points_per_centroid=1)
    kmeans.train(points)
    centroids = kmeans.centroids
    documents = [set(words) for words in tokenize(list(texts.values()))]
    weights, chosen = [], []
    for centroid in centroids:
        nearest = np.argsort(-(points @ centroid), kind="stable")[:10]
        votes = Counter(terms[j] for j in nearest)
        term = max(dict.fromkeys(terms[j] for j in nearest), key=votes.__getitem__)
        df = len(documents) if term is None else sum(term in words for words in documents)
        weights.append(np.log(1 + (len(documents) - df + 0.5) / (df + 0.5)))
        chosen.append(term)
    keep = np.argsort(-np.array(weights), kind="stable")[: prf.expansion]
    return prf.beta * np.array(weights)[keep, None] * centroids[keep], [chosen[i] for i in keep]


def test_prf_parameters_are_checked():
    assert PRF.of(True) == PRF() == PRF(fb_docs=3, clusters=24, expansion=10, beta=1.0)
    assert PRF.of({"beta": 0.5}).beta == 0.5 and PRF.of(None) is None and PRF.of(False) is None
    for bad, field in (({"fb_docs": 0}, "fb_docs"), ({"clusters": 2.5}, "clusters"), ({"beta": -1}, "beta"),
                       ({"clusters": 4, "expansion": 5}, "expansion"), ({"depth": 3}, "keys")):
        with pytest.raises(InvalidInputError, match=field):
            PRF.of(bad)


def test_expansion_embeddings_equal_the_direct_computation(collection, tiny_model):
    retriever, texts = collection
    feedback = retriever.search(QUERY, k=SMALL.fb_docs)[0]
    passages = [hit.passage.text for hit in feedback]
    with retriever.versions.reading() as (snap, _):
        bm25 = retriever.bm25.get(snap.bm25, snap.all_texts)
    expansion = expand(tiny_model, bm25, passages, SMALL)
    expected, terms = direct_expansion(tiny_model, passages, texts, SMALL)
    assert expansion.terms == terms and any(terms)
    np.testing.assert_allclose(expansion.vectors, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(expansion.weights) <= 0)  # highest idf first


def test_second_search_scores_the_expanded_query_exactly(collection, tiny_model):
    retriever, texts = collection
    hits = retriever.search(QUERY, k=5, prf=SMALL)[0]
    passages = [hit.passage.text for hit in retriever.search(QUERY, k=SMALL.fb_docs)[0]]
    with retriever.versions.reading() as (snap, _):
        bm25 = retriever.bm25.get(snap.bm25, snap.all_texts)
    query = expand(tiny_model, bm25, passages, SMALL).query(tiny_model.encode_query([QUERY])[0])
    ids = list(texts)
    scores = maxsim([query], tiny_model.encode_document([texts[i] for i in ids]))[0]
    best = np.argsort(-scores, kind="stable")[:5]
    assert [h.id for h in hits] == [ids[i] for i in best]
    np.testing.assert_allclose([h.score for h in hits], scores[best], rtol=2e-3)  # float16 index storage
    plain = retriever.search(QUERY, k=5)[0]
    assert [h.score for h in hits] != [h.score for h in plain]


def test_feedback_comes_from_the_filtered_search(collection, tiny_model):
    retriever, _ = collection
    top = retriever.search(QUERY, k=1)[0][0]
    where = {"half": 1 - top.metadata["half"]}  # leaves out the unfiltered search's best document
    hits = retriever.search(QUERY, k=5, prf=SMALL, filter=where)[0]
    assert hits and all(h.metadata == where for h in hits)
    explained = retriever.explain(QUERY, hits[0].id, prf=SMALL, filter=where)
    passages = [hit.passage.text for hit in retriever.search(QUERY, k=SMALL.fb_docs, filter=where)[0]]
    unfiltered = [hit.passage.text for hit in retriever.search(QUERY, k=SMALL.fb_docs)[0]]
    assert passages != unfiltered
    with retriever.versions.reading() as (snap, _):
        bm25 = retriever.bm25.get(snap.bm25, snap.all_texts)
    expansion = expand(tiny_model, bm25, passages, SMALL)
    assert [e["term"] for e in explained["expansion"]] == expansion.terms


def test_explain_shows_what_each_expansion_embedding_matched(collection, tiny_model):
    retriever, texts = collection
    hit = retriever.search(QUERY, k=1, prf=SMALL)[0][0]
    explained = retriever.explain(QUERY, hit.id, prf=SMALL)
    assert len(explained["expansion"]) == SMALL.expansion
    passages = [h.passage.text for h in retriever.search(QUERY, k=SMALL.fb_docs)[0]]
    with retriever.versions.reading() as (snap, _):
        expansion = expand(tiny_model, retriever.bm25.get(snap.bm25, snap.all_texts), passages, SMALL)
    document = token_vectors(tiny_model, texts[hit.id], "document")
    for entry, vector in zip(explained["expansion"], expansion.vectors):
        assert entry["document_token"] == document["tokens"][entry["document_index"]]
        assert document["scored"][entry["document_index"]]
        assert entry["score"] == pytest.approx(float(vector @ document["vectors"][entry["document_index"]]), rel=1e-5)
        best = float((document["vectors"][document["scored"]] @ vector).max())
        assert entry["score"] == pytest.approx(best, rel=1e-5)
    total = explained["score"] + sum(e["score"] for e in explained["expansion"])
    assert total == pytest.approx(hit.score, rel=2e-3)


def test_prf_needs_bm25(tmp_path, tiny_model):
    r = Retriever.create(tmp_path / "r", tiny_model, hybrid=False, model_name=str(MODELS / "st6-tiny-bert"))
    r.add(["a wing"], ids=["w"])
    with pytest.raises(InvalidInputError, match="prf"):
        r.search("wing", prf=True)


def test_cli_and_http_take_prf(collection, monkeypatch):
    from maxsim.server import LiveRetriever, create_app

    retriever, _ = collection
    expected = [h.id for h in retriever.search(QUERY, k=3, prf=True)[0]]
    result = CliRunner().invoke(app, ["search", str(retriever.folder), QUERY, "--k", "3", "--prf", "--local",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == expected
    live = LiveRetriever(retriever.folder, retriever.model)
    with TestClient(create_app(live)) as client:
        answer = client.post("/search", json={"queries": [QUERY], "k": 3, "prf": True})
        assert answer.status_code == 200 and [h["id"] for h in answer.json()["results"][0]] == expected
        custom = client.post("/search", json={"queries": [QUERY], "k": 3, "prf": {"fb_docs": 2, "clusters": 6,
                                                                                "expansion": 3, "beta": 0.7}})
        assert [h["id"] for h in custom.json()["results"][0]] == [h.id for h in
                                                                  retriever.search(QUERY, k=3, prf=SMALL)[0]]
        assert client.post("/search", json={"queries": [QUERY], "prf": {"fb_docs": 0}}).status_code == 422
