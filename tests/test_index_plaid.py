"""PlaidIndex: exhaustive settings equal ExactIndex, recall at defaults, updates, recluster."""

import numpy as np
import pytest

from maxsim.index import ExactIndex, PlaidIndex, open_index
from maxsim.index.synthetic import ClusteredCollection


def hit_ids(results):
    return [[i for i, _ in hits] for hits in results]


def recall(results, truth, k=10):
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(hit_ids(results), hit_ids(truth))]))


@pytest.fixture(scope="module")
def small():
    # 300 documents on 32 well-separated term centres with little noise: the compression error at
    # nbits=4 stays far below the gaps between exact scores, so "the same top-10" is well defined
    coll = ClusteredCollection(300, dim=32, n_terms=32, doc_tokens=(10, 30), noise=0.05, seed=3)
    return coll, coll.documents(), coll.queries(12), [f"d{i}" for i in range(300)]


EXHAUSTIVE = dict(n_ivf_probe=10**6, centroid_score_threshold=-1e9, n_full_scores=10**6)
SMALL_PARAMS = dict(nbits=4, n_centroids=256, kmeans_niters=20)


@pytest.fixture(scope="module")
def exact_small(small, tmp_path_factory):
    coll, docs, queries, ids = small
    index = ExactIndex.create(tmp_path_factory.mktemp("e") / "ix", 32, dtype="float32")
    index.add(ids, docs)
    return index


def test_exhaustive_plaid_equals_exact(small, exact_small, tmp_path):
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, **SMALL_PARAMS)
    index.add(ids, docs)
    got = index.search(queries, k=10, **EXHAUSTIVE)
    want = exact_small.search(queries, k=10)
    assert hit_ids(got) == hit_ids(want)
    np.testing.assert_allclose([s for h in got for _, s in h], [s for h in want for _, s in h], rtol=2e-3)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_decompression_error_shrinks_with_bits(small, tmp_path, nbits):
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=nbits)
    index.add(ids[:100], docs[:100])
    rec = index.get_embeddings(ids[:20])
    err = np.mean([np.linalg.norm(a - b, axis=1).mean() for a, b in zip(rec, docs[:20])])
    assert err < {1: 0.1, 2: 0.05, 4: 0.02}[nbits], err
    assert rec[0].shape == docs[0].shape and rec[0].dtype == np.float32


def test_recall_at_defaults_on_clustered_collection(tmp_path):
    coll = ClusteredCollection(2000, dim=64, n_terms=1024, doc_tokens=(30, 70), seed=5)
    docs, queries = coll.documents(), coll.queries(30)
    ids = [f"d{i}" for i in range(len(docs))]
    exact = ExactIndex.create(tmp_path / "e", 64)
    exact.add(ids, docs)
    plaid = PlaidIndex.create(tmp_path / "p", 64)
    plaid.add(ids[:1000], docs[:1000])
    plaid.add(ids[1000:], docs[1000:])  # assigned to the existing centroids, no rebuild
    assert plaid.stats()["segments"] == 2
    r = recall(plaid.search(queries, k=10), exact.search(queries, k=10))
    assert r >= 0.95, r


def test_updates_remove_compact_reopen(small, exact_small, tmp_path):
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, **SMALL_PARAMS)
    index.add(ids[:150], docs[:150], metadata=[{"i": i} for i in range(150)])
    state = dict(index._body["state"])
    index.add(ids[150:], docs[150:])
    assert index._body["state"]["n_tokens_at_training"] == state["n_tokens_at_training"]  # not retrained
    gone = ids[::4]
    index.remove(gone)
    again = open_index(tmp_path / "p")
    assert isinstance(again, PlaidIndex) and len(again) == 300 - len(gone)
    assert again.metadata("d1") == {"i": 1}
    got = again.search(queries, k=10, **EXHAUSTIVE)
    keep = set(ids) - set(gone)
    want = exact_small.search(queries, k=10, subset=sorted(keep))
    assert [set(h) for h in hit_ids(got)] == [set(h) for h in hit_ids(want)]  # trained on half: near-ties may swap
    again.compact()
    assert again.stats()["segments"] == 1 and again.ids() == [i for i in ids if i in keep]
    sub = ["d1", "d2", "d3"]
    assert all(sorted(h) == sub for h in hit_ids(again.search(queries[:2], k=5, subset=sub)))


def test_recluster_when_data_drifts(tmp_path):
    a = ClusteredCollection(200, dim=32, n_terms=64, doc_tokens=(10, 20), seed=1)
    b = ClusteredCollection(200, dim=32, n_terms=64, doc_tokens=(10, 20), seed=2)  # other centres
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=2)
    index.add([f"a{i}" for i in range(200)], a.documents())
    trained = index._body["state"]["n_tokens_at_training"]
    index.add([f"b{i}" for i in range(200)], b.documents())
    state = index._body["state"]
    assert state["n_tokens_at_training"] > trained  # re-clustered on both batches
    assert len(index) == 400 and index.ids()[:3] == ["a0", "a1", "a2"]
    rec = index.get_embeddings(["b5"])[0]
    assert np.linalg.norm(rec - b.document(5), axis=1).mean() < 0.5


def test_tiny_first_add_then_growth_reclusters(tmp_path):
    coll = ClusteredCollection(400, dim=32, n_terms=128, doc_tokens=(10, 20), seed=4)
    docs = coll.documents()
    index = PlaidIndex.create(tmp_path / "p", 32)
    index.add(["d0"], docs[:1])
    small_k = index._body["state"]["n_centroids"]
    index.add([f"d{i}" for i in range(1, 400)], docs[1:])
    assert index._body["state"]["n_centroids"] >= 4 * small_k
    assert index.ids() == [f"d{i}" for i in range(400)]


def test_rescore_copy_exhaustive_equals_float16_exact(small, tmp_path):
    """With the float16 re-scoring copy (the default) exhaustive PLAID returns exact float16 MaxSim."""
    coll, docs, queries, ids = small
    exact = ExactIndex.create(tmp_path / "e", 32)
    exact.add(ids, docs)
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=2, n_centroids=64)
    index.add(ids, docs)
    got, want = index.search(queries, k=10, **EXHAUSTIVE), exact.search(queries, k=10)
    assert hit_ids(got) == hit_ids(want)
    np.testing.assert_allclose([s for h in got for _, s in h], [s for h in want for _, s in h], rtol=1e-5)
    assert sorted(p.name.split("-")[-1] for p in (tmp_path / "p").glob("seg-*-vectors.npy")) == ["vectors.npy"]


def test_recall_nbits2_defaults_noisy_collection(tmp_path):
    """Noise 0.6 around many topics (bench/index.py's noisy set, small): recall@10 >= 0.95 at nbits 2."""
    coll = ClusteredCollection(1500, dim=64, n_topics=150, doc_tokens=(30, 90), noise=0.6, seed=2)
    docs, queries = coll.documents(), coll.queries(30)
    ids = [f"d{i}" for i in range(len(docs))]
    exact = ExactIndex.create(tmp_path / "e", 64)
    exact.add(ids, docs)
    plaid = PlaidIndex.create(tmp_path / "p", 64, nbits=2)
    plaid.add(ids, docs)
    for k in (10, 100):
        r = recall(plaid.search(queries, k=k), exact.search(queries, k=k))
        assert r >= 0.95, (k, r)


def test_layouts_without_copy_open_and_newer_format_refused(small, tmp_path):
    from maxsim.errors import CorruptedError
    from maxsim.index.storage import Manifest
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=2, n_centroids=64, rescore=None)
    index.add(ids, docs)
    assert not list((tmp_path / "p").glob("*vectors*"))  # compressed tier only
    want = hit_ids(index.search(queries, k=5))
    body = Manifest.read(tmp_path / "p")
    del body["params"]["rescore"]  # an index written before the float16 copy existed
    Manifest.commit(tmp_path / "p", body)
    old = open_index(tmp_path / "p")
    assert hit_ids(old.search(queries, k=5)) == want
    old.add(["new"], [docs[0]])  # and it keeps working without a copy
    assert "new" in open_index(tmp_path / "p")
    body = Manifest.read(tmp_path / "p")
    body["format_version"] = 99
    Manifest.commit(tmp_path / "p", body)
    with pytest.raises(CorruptedError, match="newer than"):
        open_index(tmp_path / "p")
    with pytest.raises(ValueError, match="rescore"):
        PlaidIndex.create(tmp_path / "q", 32, rescore="int8")
