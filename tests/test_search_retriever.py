"""Retriever round trip on a Cranfield subset with the tiny model: add, search, remove, reopen,
metadata, get, stats, explain, crash recovery (a child process killed mid-add)."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import DATA, MODELS
from maxsim.errors import AlreadyExistsError, NotFoundError
from maxsim.io.chunking import split_passages
from maxsim.search import Document, Hit, Passage, Retriever
from maxsim.search.passages import rank_documents

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
    return [[hit.id for hit in hits] for hits in results]


def test_exact_duplicate_found_first(retriever, corpus):
    docs = corpus[:20]
    results = retriever.search([d["text"] for d in docs], k=3)
    assert [hits[0] for hits in top_ids(results)] == [d["_id"] for d in docs]
    hit = results[0][0]
    assert isinstance(hit, Hit) and isinstance(hit.passage, Passage)
    assert hit.passage.text == hit.text[hit.passage.start: hit.passage.end]
    assert hit.text == docs[0]["text"] and hit.metadata == {"title": docs[0]["title"], "n": 0}
    assert all(a.score >= b.score for hits in results for a, b in zip(hits, hits[1:]))
    single = retriever.search(docs[0]["text"], k=3)
    assert top_ids(single) == [top_ids(results)[0]]


def test_plaid_index_round_trip(tmp_path, tiny_model, corpus):
    with Retriever.create(tmp_path / "p", tiny_model, index="plaid", hybrid=False, model_name=TINY) as r:
        r.add([d["text"] for d in corpus], ids=[d["_id"] for d in corpus])
        docs = corpus[:10]
        assert [hits[0] for hits in top_ids(r.search([d["text"] for d in docs], k=3))] == [d["_id"] for d in docs]
        r.remove([docs[0]["_id"]])
        assert docs[0]["_id"] not in top_ids(r.search(docs[0]["text"], k=len(corpus)))[0]
        assert r.stats()["kind"] == "plaid" and len(r) == len(corpus) - 1
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


def passages_of(retriever, text):
    settings = retriever.manifest["passages"]
    spans = split_passages(text, retriever.model.tokenizer, settings["max_tokens"], settings["overlap"])
    return [text[s:e] for s, e in spans]


def test_scores_are_maxsim_of_the_best_passage(retriever, tiny_model, corpus):
    query = "pressure distribution on a wing"
    hits = retriever.search(query, k=5)[0]
    q = tiny_model.encode_query([query])
    for hit in hits:
        scores = tiny_model.similarity(q, tiny_model.encode_document(passages_of(retriever, hit.text)))[0]
        assert hit.score == pytest.approx(scores.max(), rel=2e-3)
        assert scores[hit.passage.index] == pytest.approx(scores.max(), rel=2e-3)
    assert any(len(passages_of(retriever, d["text"])) > 1 for d in corpus)  # the tiny model's 32 tokens split them


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
        assert reopened.get(corpus[7]["_id"]).to_dict() == {"id": corpus[7]["_id"], "text": corpus[7]["text"],
                                                  "metadata": {"title": corpus[7]["title"], "n": 7}}


def test_add_default_ids_get_and_stats(retriever, tiny_model, corpus):
    texts = ["a brand new note about boundary layers", "another one on heat transfer"]
    ids = retriever.add(texts)
    assert len(ids) == 2 and len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)
    assert retriever.get(ids[1]) == Document(ids[1], texts[1], None)
    stats = retriever.stats()
    pieces = [p for t in [d["text"] for d in corpus] + texts for p in passages_of(retriever, t)]
    assert stats["documents"] == len(corpus) + 2 == len(retriever) and stats["passages"] == len(pieces)
    assert stats["tokens"] == sum(len(e) for e in tiny_model.encode_document(pieces))
    assert stats["kind"] == "exact" and stats["model"] == TINY and stats["dim"] == tiny_model.dim
    assert stats["bytes_on_disk"] > stats["tokens"] * tiny_model.dim * 2  # float16 vectors at least


def test_subset_restricts_results(retriever, corpus):
    subset = [corpus[10]["_id"], corpus[11]["_id"]]
    for hybrid in (False, True):
        hits = retriever.search(corpus[0]["text"], k=10, hybrid=hybrid, subset=subset)[0]
        assert {h.id for h in hits} <= set(subset) and len(hits) >= 1


def test_explain_alignment_matches_score(retriever, tiny_model, corpus):
    query = "experimental investigation of the aerodynamics of a wing"
    doc_id = corpus[0]["_id"]
    hit = next(h for h in retriever.search(query, k=len(corpus))[0] if h.id == doc_id)
    e = retriever.explain(query, doc_id)
    assert e["id"] == doc_id
    assert e["score"] == pytest.approx(hit.score, rel=1e-5)  # the stored vectors search scored
    assert len(e["alignment"]) == len(e["query_tokens"]) == len(tiny_model.encode_query(query))
    assert e["passage"].index == hit.passage.index
    assert sum(e["document_scored"]) == len(tiny_model.encode_document(e["passage"].text))
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


def test_tokenizing_waits_for_the_tokenizers_lock(tiny_model):
    """A fast tokenizer keeps its truncation length as state: a query cut at the query length, tokenized
    while another thread cuts a document at the document length, must not see the document's. So
    tokenizing (encode, explanations' layouts and spans) holds the transformer's lock."""
    import threading

    done = threading.Event()
    worker = threading.Thread(target=lambda: (tiny_model.tokenize(["a query " * 50], "query"), done.set()))
    with tiny_model.transformer.tokenizer_lock:
        worker.start()
        assert not done.wait(0.5)  # blocked while another holds the tokenizer
    worker.join(30)
    assert done.is_set()


def test_search_from_other_threads(retriever, corpus):
    """A server answers from worker threads: the document store must allow that."""
    from concurrent.futures import ThreadPoolExecutor

    expected = retriever.search(corpus[2]["text"], k=3, hybrid=True)
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = list(pool.map(lambda _: retriever.search(corpus[2]["text"], k=3, hybrid=True), range(6)))
    assert got == [expected] * 6 and expected[0][0].id == corpus[2]["_id"]


def test_second_handle_sees_commits_and_cannot_clobber(retriever, tiny_model):
    """Two Retriever objects on one folder (as a server and a CLI in two processes would be)."""
    other = Retriever.open(retriever.folder, model=tiny_model)
    retriever.add(["first writer text about nozzles"], ids=["x"])
    with pytest.raises(AlreadyExistsError, match="'x' is already in"):
        other.add(["second writer text"], ids=["x"])
    assert other.get("x").text == retriever.get("x").text == "first writer text about nozzles"
    assert other.version == retriever.version
    retriever.remove(["x"])
    assert "x" not in top_ids(other.search("first writer text about nozzles", k=5, hybrid=True))[0]
    with pytest.raises(NotFoundError):
        other.get("x")
    other.close()


def test_reader_keeps_its_version_during_a_write(retriever, corpus):
    """A read holds one version: a document deleted meanwhile stays readable (text, BM25) to it."""
    gone = corpus[4]
    with retriever.versions.reading() as (snap, index):
        before = snap.version
        retriever.remove([gone["_id"]])  # commits version N+1 while this reader is on N
        assert snap.version == before and snap.hit_rows([gone["_id"]])[gone["_id"]]["text"] == gone["text"]
        hits = rank_documents(index, snap, retriever.model.encode_query([gone["text"]]), 1, None)
        assert hits[0][0][0] == gone["_id"]
    assert retriever.version == before + 1
    with pytest.raises(NotFoundError):
        retriever.get(gone["_id"])


def test_upsert_replaces_everything_in_one_commit(retriever, corpus):
    doc = corpus[6]
    version = retriever.version
    retriever.upsert(["zyxwvut replaced text"], ids=[doc["_id"]], metadata=[{"lang": "xx"}])
    assert retriever.version == version + 1
    assert retriever.get(doc["_id"]) == Document(doc["_id"], "zyxwvut replaced text", {"lang": "xx"})
    assert top_ids(retriever.search("zyxwvut", k=1, hybrid=True)) == [[doc["_id"]]]
    assert top_ids(retriever.search(doc["text"], k=1)) != [[doc["_id"]]]
    assert top_ids(retriever.search("anything", k=5, filter={"lang": "xx"})) == [[doc["_id"]]]
    assert retriever.stats()["documents"] == len(corpus)


def test_filter_equals_brute_force(retriever, corpus):
    query = corpus[0]["text"]
    everything = retriever.search(query, k=len(corpus))[0]
    for flt, keep in [({"n": {"$lt": 20}}, lambda m: m["n"] < 20),
                      ({"$or": [{"n": 3}, {"n": {"$gte": 50}}]}, lambda m: m["n"] == 3 or m["n"] >= 50)]:
        expected = [h.id for h in everything if keep(h.metadata)][:5]
        assert top_ids(retriever.search(query, k=5, filter=flt)) == [expected]
        hybrid = retriever.search(query, k=5, filter=flt, hybrid=True)[0]
        assert all(keep(h.metadata) for h in hybrid)


def test_long_document_found_by_its_end(tmp_path, default_model):
    """Passages make the end of a long document searchable; without them it is cut (and counted)."""
    filler = " ".join(f"filler sentence number {i} about nothing in particular." for i in range(60))
    texts = [filler + " The zyxwvut nozzle melts at dawn.", "a short note on wings", "heat flow in slabs"]
    with Retriever.create(tmp_path / "on", default_model, hybrid=False, model_name="default") as r:
        r.add(texts, ids=["long", "a", "b"])
        hit = r.search("zyxwvut nozzle melts", k=1)[0][0]
        assert hit.id == "long" and "zyxwvut" in hit.passage.text and hit.passage.index > 0
        assert r.get("long").text == texts[0] and r.stats()["passages"] > 3
    with Retriever.create(tmp_path / "off", default_model, hybrid=False, passages=False, model_name="default") as r:
        with pytest.warns(UserWarning, match="1 of 3 documents are longer"):
            r.add(texts, ids=["long", "a", "b"])
        assert r.stats()["passages"] == 3


CRASH_SCRIPT = """
import os, signal, sys
import maxsim.search.versions as module
from maxsim.index.exact import ExactIndex
from maxsim.search import Retriever
r = Retriever.open(sys.argv[1])
where = sys.argv[2]
original_add, original_collect = ExactIndex.add, module.Versions._collect
def add(self, ids, embeddings, metadata=None):
    if where == "before-index":
        os.kill(os.getpid(), signal.SIGKILL)
    original_add(self, ids, embeddings, metadata)
    if where == "after-index":
        os.kill(os.getpid(), signal.SIGKILL)
def collect(self):
    os.kill(os.getpid(), signal.SIGKILL)
ExactIndex.add, module.Versions._collect = add, collect
r.add(["zyxwvut crash document text"], ids=["crash"])
"""


@pytest.mark.parametrize("where", ["before-index", "after-index", "after-commit"])
def test_killed_mid_add_recovers(retriever, corpus, where):
    n = len(retriever)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH_SCRIPT), str(retriever.folder), where],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    retriever.close()
    with Retriever.open(retriever.folder) as r:
        committed = where == "after-commit"
        assert len(r) == n + committed
        hybrid_ids = top_ids(r.search("zyxwvut", k=3, hybrid=True))[0]
        assert ("crash" in hybrid_ids) == committed  # BM25 moved with the index
        if committed:
            assert r.get("crash").text == "zyxwvut crash document text"
            r.remove(["crash"])
        else:
            with pytest.raises(NotFoundError):
                r.get("crash")
            r.add(["the id is free again"], ids=["crash"])
            assert r.get("crash").text == "the id is free again"
        assert r.get(corpus[0]["_id"]).text == corpus[0]["text"]
        leftovers = [p.name for p in (r.folder / "index").iterdir() if p.name.startswith(".tmp-")]
        assert not leftovers  # the next commit collected what the killed writer left
