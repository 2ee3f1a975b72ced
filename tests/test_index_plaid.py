"""PlaidIndex: ranking from the codes equals MaxSim of the decoded vectors, recall at defaults,
updates, re-clustering, the float16 copy, typed parameters and the codec handed to a new index."""

import numpy as np
import pytest

from maxsim.errors import InvalidInputError
from maxsim.index import ExactIndex, PlaidIndex, PlaidParams, ResidualCodec, open_index
from maxsim.index.centroids import MAX_AUTO_CENTROIDS, auto_n_centroids, outgrown
from maxsim.index.synthetic import ClusteredCollection
from maxsim.scoring import maxsim


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


def brute_force(queries, docs, ids, k):
    scores = maxsim(queries, docs)
    order = [sorted(range(len(ids)), key=lambda j: (-row[j], j))[:k] for row in scores]
    return [[(ids[j], float(row[j])) for j in top] for row, top in zip(scores, order)]


@pytest.mark.parametrize("nbits", [1, "ternary", 2, 4])
def test_exhaustive_search_is_maxsim_of_the_decoded_vectors(small, tmp_path, nbits):
    """Scored from the codes (lookup tables, no decompression): the ids and scores of a float32
    MaxSim over the vectors the codes decode to."""
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=nbits, n_centroids=64)
    index.add(ids, docs)
    want = brute_force(queries, index.get_embeddings(ids), ids, 11)
    got = index.search(queries, k=10, **EXHAUSTIVE)
    for g, w in zip(got, want):
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w[:10]], atol=2e-2)
        gaps = np.diff([s for _, s in w])
        if (np.abs(gaps) > 0.05).all():  # no near-tie among the eleven: the same ten in the same order
            assert [i for i, _ in g] == [i for i, _ in w[:10]]


@pytest.mark.parametrize("nbits", [1, "ternary", 2, 4])
def test_any_dimension_is_coded_in_whole_groups(tmp_path, nbits):
    """13 dimensions (no group size divides it): the last group is zero-padded, its codewords are
    zero past the dimension, and the search from the codes is MaxSim of the decoded vectors."""
    coll = ClusteredCollection(120, dim=13, n_terms=24, doc_tokens=(5, 15), noise=0.1, seed=5)
    docs, queries, ids = coll.documents(), coll.queries(6), [f"d{i}" for i in range(120)]
    index = PlaidIndex.create(tmp_path / "p", 13, nbits=nbits, n_centroids=32)
    index.add(ids, docs)
    n_groups, _, group = index.codec.quantizer.codebook.shape
    assert n_groups == -(-13 // group)
    assert not index.codec.quantizer.codebook[-1][:, 13 - (n_groups - 1) * group:].any()  # zero past dim 13
    decoded = index.get_embeddings(ids)
    assert all(d.shape == (len(x), 13) for d, x in zip(decoded, docs))
    assert np.mean([((d - x) ** 2).sum(1).mean() for d, x in zip(decoded, docs)]) < 0.5
    got, want = index.search(queries, k=10, **EXHAUSTIVE), brute_force(queries, decoded, ids, 10)
    for g, w in zip(got, want):
        np.testing.assert_allclose([s for _, s in g], [s for _, s in w], atol=2e-2)


def test_a_small_collection_is_ranked_whole(tmp_path):
    """400 short documents on 300 terms, k = 300: at most 4 * n_full_scores documents allowed, so the
    default search ranks every one — the exhaustive ranking, ids and scores (the inverted file
    proposes only the ~150-225 documents sharing a probed centroid with the query)."""
    coll = ClusteredCollection(400, dim=32, n_terms=300, doc_tokens=(4, 10), noise=0.2, seed=3)
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=2, n_centroids=256)
    index.add([f"d{i}" for i in range(400)], coll.documents())
    queries = coll.queries(12)
    got, want = index.search(queries, k=300), index.search(queries, k=300, **EXHAUSTIVE)
    assert hit_ids(got) == hit_ids(want) and all(len(h) == 300 for h in got)
    np.testing.assert_array_equal([[s for _, s in h] for h in got], [[s for _, s in h] for h in want])


def test_exhaustive_plaid_equals_exact(small, exact_small, tmp_path):
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, **SMALL_PARAMS)
    index.add(ids, docs)
    got, want = index.search(queries, k=10, **EXHAUSTIVE), exact_small.search(queries, k=10)
    assert recall(got, want) >= 0.98
    assert [h[0] for h in hit_ids(got)] == [h[0] for h in hit_ids(want)]
    np.testing.assert_allclose([h[0][1] for h in got], [h[0][1] for h in want], rtol=1e-2)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_decompression_error_shrinks_with_bits(small, tmp_path, nbits):
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=nbits)
    index.add(ids[:100], docs[:100])
    rec = index.get_embeddings(ids[:20])
    err = np.mean([np.linalg.norm(a - b, axis=1).mean() for a, b in zip(rec, docs[:20])])
    assert err < {1: 0.06, 2: 0.03, 4: 0.01}[nbits], err
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
    assert plaid.stats()["segments"] == 2 and not plaid.tier_bytes()["copy"]
    r = recall(plaid.search(queries, k=10), exact.search(queries, k=10))
    assert r >= 0.95, r


def test_recall_nbits2_defaults_noisy_collection(tmp_path):
    """Token noise 0.6 around many topics (the bench's 20k generator, small), codes only: the
    default search finds the exhaustive ranking from the codes, which keeps >= 0.94 of exact's top 10."""
    coll = ClusteredCollection(2000, dim=128, n_topics=200, doc_tokens=(30, 90), noise=0.6, seed=2)
    docs, queries = coll.documents(), coll.queries(30)
    ids = [f"d{i}" for i in range(len(docs))]
    exact = ExactIndex.create(tmp_path / "e", 128)
    exact.add(ids, docs)
    plaid = PlaidIndex.create(tmp_path / "p", 128)
    plaid.add(ids, docs)
    for k in (10, 100):
        want, full = exact.search(queries, k=k), plaid.search(queries, k=k, **EXHAUSTIVE)
        assert recall(full, want) >= 0.94, k
        assert recall(plaid.search(queries, k=k), full) >= 0.97, k


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
    assert recall(got, want) >= 0.95  # trained on half: near-ties may swap
    again.compact()
    assert again.stats()["segments"] == 1 and again.ids() == [i for i in ids if i in keep]
    assert hit_ids(again.search(queries, k=10, **EXHAUSTIVE)) == hit_ids(got)  # codes copied as they are
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


def test_growth_reclusters_at_the_centroid_cap():
    """4x more centroids asked for, or the cap reached from below it: a codec trained on a first add
    of ~600k tokens (4,096) re-clusters to 8,192 once the index passes ~1.05M, then never again."""
    assert auto_n_centroids(600_000) == 4096 and auto_n_centroids(1_100_000) == MAX_AUTO_CENTROIDS == 8192
    assert not outgrown(4096, 1_000_000) and outgrown(4096, 1_100_000)
    assert not outgrown(1024, 250_000) and outgrown(1024, 300_000)  # 2,048 then 4,096 asked for
    assert not outgrown(2048, 300_000)  # 4,096: twice as many, below the cap
    assert not outgrown(8192, 10 ** 9) and not outgrown(16384, 10 ** 9)


def test_rescore_copy_exhaustive_equals_float16_exact(small, tmp_path):
    """With the float16 copy (``rescore="float16"``) exhaustive PLAID returns exact float16 MaxSim."""
    coll, docs, queries, ids = small
    exact = ExactIndex.create(tmp_path / "e", 32)
    exact.add(ids, docs)
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=2, n_centroids=64, rescore="float16")
    index.add(ids, docs)
    got, want = index.search(queries, k=10, **EXHAUSTIVE), exact.search(queries, k=10)
    assert hit_ids(got) == hit_ids(want)
    np.testing.assert_allclose([s for h in got for _, s in h], [s for h in want for _, s in h], rtol=1e-5)
    tiers = index.tier_bytes()
    assert tiers["copy"] == sum(p.stat().st_size for p in (tmp_path / "p").glob("seg-*-vectors.npy")) > 0


def test_tier_bytes_add_up_to_the_folder(small, tmp_path):
    coll, docs, queries, ids = small
    index = PlaidIndex.create(tmp_path / "p", 32, nbits=2, n_centroids=64)
    index.add(ids, docs, metadata=[{"i": i} for i in range(len(ids))])
    tiers = index.tier_bytes()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "p").glob("s*-*"))
    assert sum(v for k, v in tiers.items() if k != "inverted_file") == on_disk
    n_tokens = sum(len(d) for d in docs)
    assert tiers["residuals"] - n_tokens * 8 < 200 and tiers["codes"] - n_tokens * 2 < 200  # + .npy headers
    assert tiers["copy"] == 0 and tiers["inverted_file"] > 0
    assert index.stats()["tiers"] == tiers


def test_typed_params_validated_saved_and_loaded(tmp_path):
    p = PlaidParams(nbits="ternary", n_full_scores=100)
    assert PlaidParams.from_dict(p.to_dict()) == p and PlaidParams(nbits="2").nbits == 2
    for bad, field in [({"nbits": 3}, "nbits"), ({"n_full_scores": 0}, "n_full_scores"),
                       ({"drift_bound": 1.0}, "drift_bound"), ({"kmeans_niters": "4"}, "kmeans_niters"),
                       ({"rescore": "int8"}, "rescore"), ({"first_stage": "nope"}, "first_stage"),
                       ({"n_ivf_probe": True}, "n_ivf_probe"), ({"codec": "/some/path"}, "codec")]:
        with pytest.raises(InvalidInputError, match=field):
            PlaidParams.from_dict(bad)
    index = PlaidIndex.create(tmp_path / "p", 40, nbits="ternary", seed=3)
    assert open_index(tmp_path / "p").params == PlaidParams(nbits="ternary", seed=3)
    for dim in (0, 12.5, True):
        with pytest.raises(InvalidInputError, match="dim must be a positive integer"):
            PlaidIndex.create(tmp_path / "q", dim, nbits=1)
    assert index.params["nbits"] == "ternary"


def test_codec_handed_to_new_indexes(small, tmp_path):
    """A codec trained once, saved to a file and loaded, is adopted by two indexes that never retrain:
    the same codes for the same documents."""
    coll, docs, queries, ids = small
    codec = PlaidIndex.train_codec(np.concatenate(docs[:100]), 6000, nbits=2, n_centroids=32)
    codec.save_file(tmp_path / "codec.npz")
    loaded = ResidualCodec.load_file(tmp_path / "codec.npz")
    a = PlaidIndex.create(tmp_path / "a", 32, nbits=2, codec=loaded)
    b = PlaidIndex.create(tmp_path / "b", 32, nbits=2, codec=codec)
    a.add(ids[:150], docs[:150])
    b.add(ids[150:], docs[150:])
    b.add(ids[:150], docs[:150])
    for index in (a, b):
        assert index._body["state"]["shared_codec"] and index._body["state"]["n_centroids"] == 32
        np.testing.assert_array_equal(index.codec.centroids, codec.centroids)
    np.testing.assert_array_equal(a.get_embeddings(ids[:5])[3], b.get_embeddings(ids[:5])[3])
    with pytest.raises(InvalidInputError, match="nbits"):
        PlaidIndex.create(tmp_path / "c", 32, nbits=4, codec=codec)
    with pytest.raises(InvalidInputError, match="no codec"):
        ExactIndex.create(tmp_path / "d", 32, codec=codec)
