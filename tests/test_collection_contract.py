"""One contract for every ``maxsim.Collection``: a retriever folder, a sharded collection with its
shards in this process, and the same with its shards in Ray actors answer the same searches, gets,
listings and explanations for the same documents, and stay equal through the same writes."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import maxsim
from conftest import CRANFIELD, TINY_MODEL
from maxsim.distributed import ShardedRetriever
from maxsim.errors import AlreadyExistsError, NotFoundError
from maxsim.search import Collection, Retriever

N_DOCS, MODEL = 80, str(TINY_MODEL)
FILTERS = [None, {"group": 1}, {"group": {"$in": [0, 2]}, "year": {"$gte": 1960}}]


def documents():
    rows = [json.loads(line) for line in (CRANFIELD / "corpus.jsonl").read_text().splitlines()[:N_DOCS]]
    return ([r["_id"] for r in rows], [f"{r['title']} {r['text']}" for r in rows],
            [{"group": i % 3, "year": 1950 + i % 20} for i in range(len(rows))])


@pytest.fixture(scope="module")
def queries():
    return [json.loads(line)["text"] for line in (CRANFIELD / "queries.jsonl").read_text().splitlines()[:8]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """The retriever folder every implementation is compared with."""
    ids, texts, metadata = documents()
    folder = Retriever.create(tmp_path_factory.mktemp("ref") / "r", tiny_model, model_name=MODEL)
    folder.add(texts, ids=ids, metadata=metadata)
    return folder


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def build(kind: str, root, tiny_model, request) -> Collection:
    ids, texts, metadata = documents()
    if kind == "folder":
        collection = Retriever.create(root / "c", tiny_model, model_name=MODEL)
    else:
        collection = ShardedRetriever.create(root / "c", 3, tiny_model, model_name=MODEL)
    collection.add(texts, ids=ids, metadata=metadata)
    if kind == "ray":
        request.getfixturevalue("ray_cluster")
        collection.close()
        collection = maxsim.open(root / "c", ray_address="local")
        assert type(collection.shards).__name__ == "RayShards"
    return collection


@pytest.fixture(scope="module", params=["folder", "sharded", "ray"])
def collection(request, tmp_path_factory, tiny_model):
    c = build(request.param, tmp_path_factory.mktemp(request.param), tiny_model, request)
    yield c
    c.close()


def same_hits(got, expected):
    """Same ids, texts, metadata and passages in the same order; scores equal to float32 rounding."""
    assert [[h.id for h in q] for q in got] == [[h.id for h in q] for q in expected]
    np.testing.assert_allclose([h.score for q in got for h in q], [h.score for q in expected for h in q],
                               rtol=2e-6, atol=0)
    strip = lambda hits: [[dataclasses.replace(h, score=0.0) for h in q] for q in hits]  # noqa: E731
    assert strip(got) == strip(expected)


def test_is_a_collection(collection, reference):
    assert isinstance(collection, Collection) and isinstance(reference, Collection)
    assert len(collection) == len(reference) == N_DOCS


@pytest.mark.parametrize("hybrid", [False, True])
def test_same_hits_with_filters_and_subsets(collection, reference, queries, hybrid):
    subset = [str(i) for i in range(1, N_DOCS, 3)]
    for where in FILTERS:
        for part in (None, subset):
            same_hits(collection.search(queries, k=7, hybrid=hybrid, filter=where, subset=part),
                      reference.search(queries, k=7, hybrid=hybrid, filter=where, subset=part))


HOW = [{"hybrid": True, "fusion": "convex", "alpha": 0.6}, {"hybrid": True, "fusion": "score"},
       {"prf": {"fb_docs": 2, "clusters": 8, "expansion": 3}}, {"prf": True, "hybrid": True, "filter": {"group": 2}}]


@pytest.mark.parametrize("how", HOW)
def test_same_hits_with_fusions_and_prf(collection, reference, queries, how):
    same_hits(collection.search(queries[:4], k=6, **how), reference.search(queries[:4], k=6, **how))
    if "prf" in how:
        got, expected = (c.explain(queries[0], "17", **how)["expansion"] for c in (collection, reference))
        assert [e["term"] for e in got] == [e["term"] for e in expected]
        np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in expected], rtol=1e-5)


def test_get_listing_explain_stats(collection, reference, queries):
    assert collection.get("17") == reference.get("17")
    for where in FILTERS:
        for limit, offset in ((5, 0), (7, 3), (100, 0), (10, N_DOCS)):
            got = collection.documents(filter=where, limit=limit, offset=offset)
            assert got == reference.documents(filter=where, limit=limit, offset=offset)
    assert [d.id for d in collection.documents(limit=4)] == sorted(documents()[0])[:4]  # id order
    assert collection.explain(queries[0], "17") == reference.explain(queries[0], "17")
    counts = ("documents", "passages", "tokens", "split_documents", "kind", "dim", "hybrid")
    assert {k: collection.stats()[k] for k in counts} == {k: reference.stats()[k] for k in counts}
    with pytest.raises(NotFoundError, match="no-such"):
        collection.get("no-such")
    with pytest.raises(NotFoundError, match="no-such"):
        collection.search(queries[0], subset=["1", "no-such"])


def test_same_writes_same_answers(request, tmp_path, tiny_model, queries):
    kinds = ["folder", "sharded", "ray"]
    built = [build(kind, tmp_path / kind, tiny_model, request) for kind in kinds]
    try:
        steps = [("add", ["zyxwvut turbulent jets in crossflow", "wing flutter at transonic speed"], ["n1", "n2"],
                  [{"group": 1, "year": 2001}, None]),
                 ("upsert", ["replaced: heat transfer to a rotating disk", "n1 rewritten about nozzles"], ["3", "n1"],
                  [{"group": 2, "year": 1999}, {"group": 0, "year": 2002}]),
                 ("remove", ["4", "n2", "60"])]
        for step in steps:
            versions = [c.version for c in built]
            for c in built:
                getattr(c, step[0])(*step[1:]) if step[0] == "remove" else \
                    getattr(c, step[0])(step[1], ids=step[2], metadata=step[3])
            assert all(c.version > v for c, v in zip(built, versions))
            for c in built[1:]:
                for hybrid in (False, True):
                    same_hits(c.search(queries + ["zyxwvut nozzles"], k=6, hybrid=hybrid, filter={"group": 2}),
                              built[0].search(queries + ["zyxwvut nozzles"], k=6, hybrid=hybrid, filter={"group": 2}))
                assert c.documents(limit=200) == built[0].documents(limit=200)
        for c in built:
            assert c.get("3").text.startswith("replaced") and len(c) == N_DOCS - 1
            with pytest.raises(AlreadyExistsError, match="'n1'"):
                c.add(["again"], ids=["n1"])
            with pytest.raises(NotFoundError, match="'gone'"):
                c.remove(["5", "gone"])
            assert c.get("5").id == "5" and len(c) == N_DOCS - 1  # nothing changed
    finally:
        for c in built:
            c.close()


WRITER = """
import os, signal, sys
from maxsim.distributed import ShardedRetriever
from maxsim.distributed.lexical import Lexical
if sys.argv[2] != "-":  # kill -9 inside write number N, after its shards committed, before its state
    writes, publish = [0], Lexical.publish
    def killing(self, *args):
        writes[0] += 1
        if writes[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        publish(self, *args)
    Lexical.publish = killing
c = ShardedRetriever.open(sys.argv[1])
for n in range(10_000):
    c.upsert([f"zyxwvut note code{n}x about supersonic inlets"] * 2, ids=[f"w{n % 7}", f"v{n}"])
    print(n, flush=True)
"""


def killed_writer(folder, seconds: float | None, at_write: int | None = None) -> int:
    """Run WRITER on ``folder`` and kill -9 it ``seconds`` after its first acknowledged write, or
    inside its write number ``at_write``; the last write it acknowledged (-1: none)."""
    argv = [sys.executable, "-c", textwrap.dedent(WRITER), str(folder), str(at_write or "-")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "MAXSIM_DTYPE": "float32"})
    if seconds is not None:
        assert proc.stdout.readline().strip() == "0"
        time.sleep(seconds)
        os.kill(proc.pid, signal.SIGKILL)
    out = proc.stdout.read()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return max([int(line) for line in out.split()], default=0 if seconds is not None else -1)


def shards_ahead(folder, tiny_model) -> bool:
    """Whether a killed write left shards committed past the collection's state (killed mid-write)."""
    from maxsim.distributed.lexical import Lexical

    versions = []
    for shard in sorted(folder.glob("shard-*")):
        with Retriever.open(shard, model=tiny_model) as r:
            versions.append(r.version)
    return Lexical(folder, True).stale(versions)


def test_kill_during_sharded_writes_loses_nothing_acknowledged(tmp_path, tiny_model):
    ids, texts, metadata = documents()
    folder = tmp_path / "c"
    ShardedRetriever.create(folder, 3, tiny_model, model_name=MODEL).add(texts[:20], ids=ids[:20],
                                                                       metadata=metadata[:20])
    # kills inside a write (after its shards committed) and at random moments of a run of writes
    for seconds, at_write in ((None, 3), (0.7, None), (None, 1), (1.9, None)):
        acknowledged = killed_writer(folder, seconds, at_write)
        assert shards_ahead(folder, tiny_model) or at_write is None  # the hook did kill mid-write
        with maxsim.open(folder, model=tiny_model) as reopened:  # recovers the BM25 and state
            for n in range(acknowledged + 1):
                assert reopened.get(f"v{n}").text.endswith(f"code{n}x about supersonic inlets")
            assert not reopened.lexical.stale(reopened._shard_versions())
            bm25 = reopened.lexical.current(reopened._all_texts)  # what hybrid searches rank with
            assert set(bm25.ids) == {d.id for d in reopened.documents(limit=1000)}
            last = max(acknowledged, 0)
            assert bm25.top([f"code{last}x"], 1)[0][0][0] in (f"v{last}", f"w{last % 7}")
    assert acknowledged > 0


@pytest.mark.parametrize("ray", [False, True])
def test_maxsim_serve_a_sharded_collection(tmp_path, tiny_model, reference, queries, ray):
    """A real `maxsim serve` process over a sharded collection (shards in the server, or in Ray actors
    of a local cluster it starts) answers search, explain, listing, PUT and DELETE."""
    import httpx

    from test_server import serve_process

    ids, texts, metadata = documents()
    ShardedRetriever.create(tmp_path / "c", 3, tiny_model, model_name=MODEL).add(texts, ids=ids, metadata=metadata)
    with serve_process(tmp_path / "c", *(["--ray"] if ray else []), timeout=300) as base:
        http = httpx.Client(base_url=base, timeout=120)
        found = http.post("/search", json={"queries": queries[:2], "k": 5, "filter": {"group": 1}}).json()["results"]
        assert [[h["id"] for h in q] for q in found] == \
            [[h.id for h in q] for q in reference.search(queries[:2], k=5, filter={"group": 1})]
        explained = http.post("/explain", json={"query": queries[0], "id": "17"}).json()
        assert explained["id"] == "17" and explained["passage"]["text"] in explained["text"]
        listed = http.get("/documents", params={"filter": '{"group": 2}', "limit": 3}).json()
        assert [d["id"] for d in listed["documents"]] == [d.id for d in reference.documents({"group": 2}, limit=3)]
        assert http.put("/documents/zz", json={"text": "zyxwvut ramjet combustor", "metadata": {"group": 9}}).json() \
            == {"id": "zz", "documents": N_DOCS + 1}
        assert http.post("/search", json={"queries": ["zyxwvut ramjet"], "k": 1, "hybrid": True,
                                          "filter": {"group": 9}}).json()["results"][0][0]["id"] == "zz"
        assert http.delete("/documents/zz").json() == {"deleted": "zz", "documents": N_DOCS}
        assert http.get("/documents/zz").status_code == 404
        assert http.get("/stats").json()["shards"] == 3
