"""Hybrid search: fusion arithmetic on hand-made rankings, the on/off switch, BM25 kept in sync."""

import json
import shutil

import pytest

from conftest import DATA, MODELS
from maxsim.search import Retriever, convex_fusion, fuse, reciprocal_rank_fusion, score_fusion
from maxsim.search.fusion import DEFAULT_ALPHA, FUSION_DEPTH, dense_floor
from maxsim.search.passages import rank_documents

DENSE = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
SPARSE = [("c", 0.9), ("a", 0.5), ("d", 0.1)]


def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion([DENSE, SPARSE])
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63}
    assert [doc for doc, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx(expected)
    assert dict(reciprocal_rank_fusion([DENSE, SPARSE], k=0, weights=[2, 1])) == pytest.approx(
        {"a": 2 / 1 + 1 / 2, "b": 2 / 2, "c": 2 / 3 + 1 / 1, "d": 1 / 3})
    assert fuse([DENSE, SPARSE], "rrf") == fused


def test_score_fusion_by_hand():
    fused = score_fusion([DENSE, SPARSE])
    # min-max per list: DENSE a=1, b=.5, c=0; SPARSE c=1, a=.5, d=0; equal weights 0.5
    assert fused == [("a", pytest.approx(0.75)), ("c", pytest.approx(0.5)), ("b", pytest.approx(0.25)),
                     ("d", pytest.approx(0.0))]
    assert dict(score_fusion([DENSE, [("x", 3.0), ("y", 3.0)]])) == pytest.approx(
        {"a": 0.5, "b": 0.25, "c": 0.0, "x": 0.5, "y": 0.5})  # all-equal scores normalise to 1
    assert fuse([DENSE, SPARSE], "score") == fused


def test_convex_fusion_by_hand():
    """Theoretical min-max: (s - min) / (list max - min), min 0 unless given; weights alpha, 1 - alpha."""
    fused = convex_fusion([DENSE, SPARSE], [0.3, 0.7])
    # DENSE / 10: a=1, b=.6, c=.2; SPARSE / .9: c=1, a=.5/.9, d=.1/.9
    expected = {"a": 0.3 + 0.7 * 0.5 / 0.9, "b": 0.3 * 0.6, "c": 0.3 * 0.2 + 0.7, "d": 0.7 * 0.1 / 0.9}
    assert [doc for doc, _ in fused] == ["c", "a", "b", "d"] and dict(fused) == pytest.approx(expected)
    floored = dict(convex_fusion([DENSE, SPARSE], [0.3, 0.7], lower=[-10.0, 0.0]))  # (s + 10) / 20
    assert floored == pytest.approx({"a": 0.3 + 0.7 * 0.5 / 0.9, "b": 0.3 * 0.8, "c": 0.3 * 0.6 + 0.7,
                                     "d": 0.7 * 0.1 / 0.9})
    assert fuse([DENSE, SPARSE], "convex", 0.3) == fused
    assert fuse([DENSE, SPARSE], "convex") == convex_fusion([DENSE, SPARSE], [DEFAULT_ALPHA, 1 - DEFAULT_ALPHA])
    assert dense_floor([[0.6, 0.8], [0.0, 0.5]]) == pytest.approx(-1.5)


def test_fusion_rejects_bad_options():
    for alpha, method in ((1.5, "convex"), (-0.1, "convex"), (True, "convex"), (0.5, "rrf")):
        with pytest.raises(ValueError, match="alpha"):
            fuse([DENSE, SPARSE], method, alpha)
    with pytest.raises(ValueError, match="weights"):
        score_fusion([DENSE, SPARSE], weights=[1.0])
    with pytest.raises(ValueError, match="fusion"):
        fuse([DENSE], "max")


@pytest.fixture()
def retriever(tmp_path, tiny_model):
    with open(DATA / "cranfield" / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [json.loads(line) for line, _ in zip(f, range(80))]
    r = Retriever.create(tmp_path / "r", tiny_model, hybrid=True, model_name=str(MODELS / "st6-tiny-bert"))
    r.add([d["text"] for d in corpus], ids=[d["_id"] for d in corpus])
    yield r
    r.close()


@pytest.mark.parametrize("fusion", ["rrf", "score", "convex"])
def test_hybrid_is_the_fusion_of_both_rankers(retriever, fusion):
    queries = ["flutter of panels at supersonic speed", "heat transfer in laminar boundary layers"]
    vectors = retriever.model.encode_query(queries)
    with retriever.versions.reading() as (snap, index):
        ranked = rank_documents(index, snap, vectors, FUSION_DEPTH, None)
        dense = [[(doc, score) for doc, score, _ in hits] for hits in ranked]
        sparse = retriever.bm25.get(snap.bm25, snap.all_texts).top(queries, FUSION_DEPTH)
    assert all(sparse) and all(len(d) == len(retriever) for d in dense)
    alpha = 0.3 if fusion == "convex" else None
    results = retriever.search(queries, k=7, hybrid=True, fusion=fusion, alpha=alpha)
    for hits, d, s, q in zip(results, dense, sparse, vectors):
        expected = fuse([d, s], fusion, alpha, lower=[dense_floor(q), 0.0])[:7]
        assert [(h.id, h.score) for h in hits] == [(i, pytest.approx(v)) for i, v in expected]


def test_hybrid_switch_lifts_the_lexical_match(retriever):
    """A rare exact word: BM25 puts its only document first; MaxSim alone (tiny model) does not,
    and fusion moves it up."""
    retriever.add(["the quokka results are shown", "quick results of wing tests are shown here"], ids=["q1", "q2"])
    query = "quokka"
    assert bm25_of(retriever)[0].top([query], 3)[0][0][0] == "q1"
    dense_rank = [h.id for h in retriever.search(query, k=len(retriever))[0]].index("q1")
    hybrid_rank = [h.id for h in retriever.search(query, k=len(retriever), hybrid=True)[0]].index("q1")
    assert hybrid_rank < dense_rank


def bm25_of(retriever):
    with retriever.versions.reading() as (snap, _):
        return retriever.bm25.get(snap.bm25, snap.all_texts), snap.all_texts()[0]


def test_bm25_in_sync_after_add_and_remove(retriever):
    word = "zyxwvut"
    assert bm25_of(retriever)[0].top([word], 5) == [[]]
    retriever.add([f"a note on {word} wings"], ids=["new"])
    bm25, ids = bm25_of(retriever)
    assert [i for i, _ in bm25.top([word], 5)[0]] == ["new"] and bm25.ids == ids
    assert retriever.search(word, k=1, hybrid=True)[0][0].id == "new"
    retriever.remove(["new", "1"])
    bm25, ids = bm25_of(retriever)
    assert bm25.top([word], 5) == [[]] and bm25.ids == ids and "1" not in ids
    before = retriever.search("aerodynamics of wings", k=5, hybrid=True)
    retriever.close()
    with Retriever.open(retriever.folder, model=retriever.model) as reopened:  # loads the saved BM25
        assert reopened.search("aerodynamics of wings", k=5, hybrid=True) == before
    copies = sorted((retriever.folder / "bm25").iterdir())
    assert len(copies) <= 2  # the copies of the last two versions, older ones collected
    shutil.rmtree(retriever.folder / "bm25")
    with Retriever.open(retriever.folder, model=retriever.model) as reopened:  # rebuilds it from the texts
        assert reopened.search("aerodynamics of wings", k=5, hybrid=True) == before
    retriever.add(["one more"], ids=["more"])  # the next commit saves a fresh copy
    with Retriever.open(retriever.folder, model=retriever.model) as reopened, reopened.versions.reading() as (snap, _):
        name = snap.bm25
    data = retriever.folder / "bm25" / name / "data.csc.index.npy"
    raw = bytearray(data.read_bytes())
    raw[-8:] = b"\x00\x00\x80\x7f" * 2  # same size, scores overwritten with inf: caught by the checksum
    data.write_bytes(bytes(raw))
    with Retriever.open(retriever.folder, model=retriever.model) as reopened:
        after = reopened.search("aerodynamics of wings", k=5, hybrid=True)
        assert [h.id for h in after[0]] == [h.id for h in before[0]]


def test_hybrid_needs_bm25(tmp_path, tiny_model):
    with Retriever.create(tmp_path / "plain", tiny_model, hybrid=False, model_name=str(MODELS / "st6-tiny-bert")) as r:
        r.add(["some text"], ids=["x"])
        assert r.search("text", k=1)[0][0].id == "x"
        with pytest.raises(ValueError, match="hybrid=True"):
            r.search("text", hybrid=True)
        assert not (tmp_path / "plain" / "bm25").exists()


def test_token_cache_builds_what_a_fresh_build_does():
    """BM25 built through the writer's token cache (after adds, a changed text, removals and a
    vocabulary reset) ranks and scores exactly as one built from the texts."""
    from maxsim.search.bm25 import BM25Index, TokenCache

    rows = [json.loads(line) for line in (DATA / "cranfield" / "corpus.jsonl").read_text().splitlines()[:300]]
    ids, texts = [r["_id"] for r in rows], [r["text"] or "empty" for r in rows]
    queries = ["boundary layer heat transfer", "supersonic flow over a wedge", "the", "zzz unknown words"]
    cache = TokenCache()
    versions = [(ids, texts), (ids[20:] + ["new"], texts[20:] + ["a new text on shock waves"]),
                (ids[:10], [t.upper() + " rewritten" for t in texts[:10]]), (ids, texts)]
    for vids, vtexts in versions:  # the third version leaves most words unused: the cache resets
        cached, fresh = BM25Index.build(vids, vtexts, cache), BM25Index.build(vids, vtexts)
        assert cached.top(queries, 20) == fresh.top(queries, 20)
        assert sorted(cached.bm25.vocab_dict) == sorted(fresh.bm25.vocab_dict)
