"""Retriever round trip on a Cranfield subset with the tiny model: add, search, remove, reopen,
metadata, get, stats, explain, crash recovery (a child process killed mid-add)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import DATA, MODELS
from maxsim.search import Retriever

TINY = str(MODELS / "st6-tiny-bert")
N_DOCS = 60


def cranfield(n=N_DOCS):
    with open(DATA / "cranfield" / "corpus.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


@pytest.fixture(scope="module")
def corpus():
    return [d for d in cranfield() if d["text"].strip()]


@pytest.fixture()
def retriever(tmp_path, tiny_model, corpus):
    r = Retriever.create(tmp_path / "r", tiny_model, index="exact", hybrid=True, model_name=TINY)
    r.add([d["text"] for d in corpus], ids=[d["_id"] for d in corpus],
          metadata=[{"title": d["title"], "n": i} for i, d in enumerate(corpus)])
    yield r
    r.close()


def top_ids(results):
    return [[hit["id"] for hit in hits] for hits in results]


def test_exact_duplicate_found_first(retriever, corpus):
    docs = corpus[:20]
    results = retriever.search([d["text"] for d in docs], k=3)
    assert [hits[0] for hits in top_ids(results)] == [d["_id"] for d in docs]
    hit = results[0][0]
    assert set(hit) == {"id", "score", "text", "metadata"}
    assert hit["text"] == docs[0]["text"] and hit["metadata"] == {"title": docs[0]["title"], "n": 0}
    assert all(a["score"] >= b["score"] for hits in results for a, b in zip(hits, hits[1:]))
    single = retriever.search(docs[0]["text"], k=3)
    assert top_ids(single) == [top_ids(results)[0]]


def test_plaid_index_round_trip(tmp_path, tiny_model, corpus):
    with Retriever.create(tmp_path / "p", tiny_model, index="plaid", hybrid=False, model_name=TINY) as r:
        r.add([d["text"] for d in corpus], ids=[d["_id"] for d in corpus])
        docs = corpus[:10]
        assert [hits[0] for hits in top_ids(r.search([d["text"] for d in docs], k=3))] == [d["_id"] for d in docs]
        r.remove([docs[0]["_id"]])
        assert docs[0]["_id"] not in top_ids(r.search(docs[0]["text"], k=len(corpus)))[0]
        assert r.stats()["index"] == "plaid" and len(r) == len(corpus) - 1
    with Retriever.open(tmp_path / "p") as reopened:
        assert top_ids(reopened.search(docs[1]["text"], k=1)) == [[docs[1]["_id"]]]


def test_unnamed_model_is_saved_and_reloaded(tmp_path, tiny_model):
    with Retriever.create(tmp_path / "s", tiny_model, hybrid=False) as r:  # no model_name
        r.add(["flutter of a panel", "heat in a slab"], ids=["f", "h"])
        before = r.search("panel flutter", k=2)
    assert (tmp_path / "s" / "model").is_dir()
    with Retriever.open(tmp_path / "s") as reopened:
        assert reopened.manifest["model"] == "model" and reopened.model is not tiny_model
        assert reopened.search("panel flutter", k=2) == before


def test_scores_are_maxsim(retriever, tiny_model, corpus):
    query = "pressure distribution on a wing"
    hits = retriever.search(query, k=5)[0]
    expected = tiny_model.similarity(tiny_model.encode_query([query]),
                                     tiny_model.encode_document([retriever.get(h["id"])["text"] for h in hits]))[0]
    np.testing.assert_allclose([h["score"] for h in hits], expected, rtol=2e-3)


def test_remove_then_not_found(retriever, corpus):
    gone = corpus[3]
    retriever.remove([gone["_id"]])
    assert len(retriever) == len(corpus) - 1
    assert gone["_id"] not in top_ids(retriever.search(gone["text"], k=len(corpus)))[0]
    assert gone["_id"] not in top_ids(retriever.search(gone["text"], k=len(corpus), hybrid=True))[0]
    with pytest.raises(KeyError, match=gone["_id"]):
        retriever.get(gone["_id"])


def test_reopen_gives_same_results(retriever, corpus):
    queries = ["shock waves at hypersonic speed", corpus[5]["text"]]
    before = retriever.search(queries, k=5)
    before_hybrid = retriever.search(queries, k=5, hybrid=True, fusion="score")
    retriever.close()
    with Retriever.open(retriever.folder) as reopened:  # model=None: loads the model the manifest names
        assert reopened.manifest["model"] == TINY
        assert reopened.search(queries, k=5) == before
        assert reopened.search(queries, k=5, hybrid=True, fusion="score") == before_hybrid
        assert reopened.get(corpus[7]["_id"]) == {"id": corpus[7]["_id"], "text": corpus[7]["text"],
                                                  "metadata": {"title": corpus[7]["title"], "n": 7}}


def test_add_default_ids_get_and_stats(retriever, tiny_model, corpus):
    texts = ["a brand new note about boundary layers", "another one on heat transfer"]
    ids = retriever.add(texts)
    assert len(ids) == 2 and len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)
    assert retriever.get(ids[1]) == {"id": ids[1], "text": texts[1], "metadata": None}
    stats = retriever.stats()
    all_texts = [d["text"] for d in corpus] + texts
    assert stats["documents"] == len(corpus) + 2 == len(retriever)
    assert stats["tokens"] == sum(len(e) for e in tiny_model.encode_document(all_texts))
    assert stats["index"] == "exact" and stats["model"] == TINY and stats["dim"] == tiny_model.dim
    assert stats["bytes_on_disk"] > stats["tokens"] * tiny_model.dim * 2  # float16 vectors at least


def test_subset_restricts_results(retriever, corpus):
    subset = [corpus[10]["_id"], corpus[11]["_id"]]
    for hybrid in (False, True):
        hits = retriever.search(corpus[0]["text"], k=10, hybrid=hybrid, subset=subset)[0]
        assert {h["id"] for h in hits} <= set(subset) and len(hits) >= 1


def test_explain_alignment_matches_score(retriever, tiny_model, corpus):
    query = "experimental investigation of the aerodynamics of a wing"
    doc_id = corpus[0]["_id"]
    hit = next(h for h in retriever.search(query, k=len(corpus))[0] if h["id"] == doc_id)
    e = retriever.explain(query, doc_id)
    assert e["id"] == doc_id
    assert e["score"] == pytest.approx(hit["score"], rel=2e-3)
    assert len(e["alignment"]) == len(e["query_tokens"]) == len(tiny_model.encode_query(query))
    assert sum(e["document_scored"]) == len(tiny_model.encode_document(corpus[0]["text"]))
    for a in e["alignment"]:
        assert e["document_scored"][a["document_index"]]  # only positions that have vectors are picked
        assert a["document_token"] == e["document_tokens"][a["document_index"]]
    assert e["score"] == pytest.approx(sum(a["score"] for a in e["alignment"]))
    # the piece "aerodynamic" of the query picks the same piece in the document (exact lexical match)
    picked = [a for a in e["alignment"] if a["query_token"] == "aerodynamic"]
    assert picked and picked[0]["document_token"] == "aerodynamic"
    start, end = e["document_spans"][picked[0]["document_index"]]
    assert corpus[0]["text"][start:end] == "aerodynamic"
    skipped = [t for t, s in zip(e["document_tokens"], e["document_scored"]) if not s]
    assert "." in skipped  # punctuation has no vector in documents


def test_search_from_other_threads(retriever, corpus):
    """A server answers from worker threads: the document store must allow that."""
    from concurrent.futures import ThreadPoolExecutor

    expected = retriever.search(corpus[2]["text"], k=3, hybrid=True)
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = list(pool.map(lambda _: retriever.search(corpus[2]["text"], k=3, hybrid=True), range(6)))
    assert got == [expected] * 6 and expected[0][0]["id"] == corpus[2]["_id"]


def test_second_handle_sees_commits_and_cannot_clobber(retriever, tiny_model):
    """Two Retriever objects on one folder (as a server and a CLI in two processes would be)."""
    other = Retriever.open(retriever.folder, model=tiny_model)
    retriever.add(["first writer text about nozzles"], ids=["x"])
    with pytest.raises(ValueError, match="'x' is already in"):
        other.add(["second writer text"], ids=["x"])
    assert other.get("x")["text"] == retriever.get("x")["text"] == "first writer text about nozzles"
    assert other.refresh() is False  # the failed add already moved it to the newest commit
    retriever.remove(["x"])
    assert other.refresh() is True
    assert "x" not in top_ids(other.search("first writer text about nozzles", k=5, hybrid=True))[0]
    other.close()


CRASH_SCRIPT = """
import os, signal, sys
from maxsim.search import Retriever
r = Retriever.open(sys.argv[1])
where = sys.argv[2]
original = r.index.add
def add(ids, embeddings, metadata=None):
    if where == "before-index":
        os.kill(os.getpid(), signal.SIGKILL)
    original(ids, embeddings, metadata)
    os.kill(os.getpid(), signal.SIGKILL)
r.index.add = add
r.add(["zyxwvut crash document text"], ids=["crash"])
"""


@pytest.mark.parametrize("where", ["before-index", "after-index"])
def test_killed_mid_add_recovers(retriever, corpus, where):
    n = len(retriever)
    retriever.search("warm up bm25", hybrid=True)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH_SCRIPT), str(retriever.folder), where],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    retriever.close()
    with Retriever.open(retriever.folder) as r:
        committed = where == "after-index"
        assert len(r) == n + committed
        hybrid_ids = top_ids(r.search("zyxwvut", k=3, hybrid=True))[0]
        assert ("crash" in hybrid_ids) == committed  # BM25 caught up with the index
        if committed:
            assert r.get("crash")["text"] == "zyxwvut crash document text"
            r.remove(["crash"])
        else:
            with pytest.raises(KeyError):
                r.get("crash")
            r.add(["the id is free again"], ids=["crash"])  # the leftover row is settled, not in the way
            assert r.get("crash")["text"] == "the id is free again"
        assert r.get(corpus[0]["_id"])["text"] == corpus[0]["text"]
