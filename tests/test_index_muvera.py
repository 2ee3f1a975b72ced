"""MUVERA first stage: FDEs against a direct computation, FDE scores vs MaxSim, recall against exact
search, save/load, remove, subset, bad settings."""

import json

import numpy as np
import pytest

from maxsim.errors import AlreadyExistsError, CorruptedError, InvalidInputError, LimitExceededError, NotFoundError
from maxsim.index import ExactIndex
from maxsim.index.fde import FDEncoder
from maxsim.index.muvera import MuveraIndex, MuveraParams
from maxsim.index.synthetic import ClusteredCollection
from maxsim.scoring import maxsim


def direct_fde(encoder: FDEncoder, x: np.ndarray, document: bool) -> np.ndarray:
    """The encoding written out loop by loop from the paper's definition, in float64."""
    repetitions, dim, k_sim = encoder.simhash.shape
    blocks = []
    for r in range(repetitions):
        g = encoder.simhash[r]
        s = None if encoder.inner is None else encoder.inner[r].astype(np.float64)
        codes = [sum(2 ** i for i in range(k_sim) if float(v @ g[:, i]) > 0) for v in x]
        for part in range(2 ** k_sim):
            members = [v.astype(np.float64) for v, c in zip(x, codes) if c == part]
            if members:
                block = np.sum(members, axis=0) / (len(members) if document else 1)
            elif document and len(x):
                block = x[int(np.argmin([bin(c ^ part).count("1") for c in codes]))].astype(np.float64)
            else:
                block = np.zeros(dim)
            blocks.append(block if s is None else block @ s / np.sqrt(s.shape[1]))
    fde = np.concatenate(blocks)
    return fde if encoder.final is None else fde @ encoder.final / np.sqrt(encoder.final.shape[1])


@pytest.mark.parametrize("k_sim,d_proj,repetitions,final_dim", [(3, 4, 3, None), (2, None, 2, None), (4, 8, 3, 40)])
@pytest.mark.parametrize("document", [True, False])
def test_encoding_equals_direct_computation(k_sim, d_proj, repetitions, final_dim, document):
    encoder = FDEncoder.draw(16, k_sim, d_proj, repetitions, final_dim, seed=1)
    rng = np.random.default_rng(0)
    sets = [rng.standard_normal((n, 16)).astype(np.float32) for n in (5, 1, 0, 40, 3)]
    got = encoder.encode(sets, document)
    want = np.stack([direct_fde(encoder, s, document) for s in sets])
    assert got.shape == (5, final_dim or (2 ** k_sim) * (d_proj or 16) * repetitions) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert not got[2].any()  # an empty set encodes to 0
    if document:  # every partition of a non-empty document is filled: no zero block
        assert final_dim or (np.abs(got[1].reshape(-1, d_proj or 16)).sum(1) > 0).all()


def test_encoding_is_chunk_independent(monkeypatch):
    encoder = FDEncoder.draw(16, 3, 4, 2, None, seed=2)
    sets = [np.random.default_rng(i).standard_normal((i % 7 + 1, 16)).astype(np.float32) for i in range(30)]
    whole = encoder.encode(sets, True)
    monkeypatch.setattr("maxsim.index.fde.CHUNK_ELEMENTS", 1)  # one set per chunk
    np.testing.assert_allclose(encoder.encode(sets, True), whole, atol=1e-6)


def test_fde_inner_product_approximates_maxsim():
    coll = ClusteredCollection(300, dim=32, n_terms=256, n_topics=30, doc_tokens=(10, 40), noise=0.4, seed=4)
    docs, queries = coll.documents(), coll.queries(20)
    exact = maxsim(queries, docs)

    def fde_scores(k_sim, d_proj, reps=20):  # per repetition: each one approximates MaxSim
        encoder = FDEncoder.draw(32, k_sim, d_proj, reps, None, seed=0)
        return encoder.encode(queries, False) @ encoder.encode(docs, True).T / reps

    corr = {k_sim: np.corrcoef(fde_scores(k_sim, None).ravel(), exact.ravel())[0, 1] for k_sim in (1, 3, 5)}
    assert corr[1] < corr[3] < corr[5] and corr[5] > 0.8, corr  # finer partitions, closer to MaxSim
    # without projections an FDE score never exceeds MaxSim (a partition's mean is at most its best token)
    assert (fde_scores(4, None) <= exact + 1e-4).all()
    # the +-1 inner projections (16 of 32 dims) add noise: lower, still strong correlation
    projected, plain = fde_scores(4, 16), fde_scores(4, None)
    assert 0.6 < np.corrcoef(projected.ravel(), exact.ravel())[0, 1] < np.corrcoef(plain.ravel(), exact.ravel())[0, 1]


@pytest.fixture(scope="module")
def collection():
    coll = ClusteredCollection(1500, dim=32, n_terms=1024, n_topics=50, doc_tokens=(10, 40), noise=0.3, seed=7)
    docs, queries = coll.documents(), coll.queries(30)
    ids = [f"d{i}" for i in range(len(docs))]
    truth = [[ids[j] for j in row] for row in np.argsort(-maxsim(queries, docs), axis=1, kind="stable")[:, :10]]
    return ids, docs, queries, truth


def recall(found, truth, k=10):
    return float(np.mean([len(set(a) & set(b[:k])) / k for a, b in zip(found, truth)]))


SMALL = dict(k_sim=4, d_proj=16, repetitions=10)  # 2,560 dims


@pytest.fixture(scope="module", params=["hnsw", "ivf"])
def stage(request, collection):
    ids, docs, _, _ = collection
    index = MuveraIndex(32, MuveraParams(**SMALL, graph=request.param, storage="float32", ivf_nprobe=16))
    index.add(ids[:1000], docs[:1000])
    index.add(ids[1000:], docs[1000:])
    return index


def test_first_stage_recall_against_exact(stage, collection):
    ids, docs, queries, truth = collection
    alone, wide = stage.candidates(queries, 10), stage.candidates(queries, 200)
    assert all(len(c) == 200 for c in wide)
    assert 0.3 < recall(alone, truth) < 0.6 < 0.8 < recall(wide, truth), (recall(alone, truth), recall(wide, truth))
    # faiss finds the exhaustive FDE ranking's candidates
    fde = stage.encoder.encode(queries, False) @ stage.encoder.encode(docs, True).T
    best = [[ids[j] for j in row[:200]] for row in np.argsort(-fde, axis=1, kind="stable")]
    assert recall(wide, best, k=200) >= 0.9
    hits = stage.search(queries, 10, lambda wanted: [docs[int(i[1:])] for i in wanted], n_candidates=200)
    assert recall([[i for i, _ in h] for h in hits], truth) == pytest.approx(recall(wide, truth), abs=1e-9)


def test_search_reranks_by_exact_maxsim(stage, collection, tmp_path):
    ids, docs, queries, truth = collection
    vectors = lambda wanted: [docs[int(i[1:])] for i in wanted]
    exact = ExactIndex.create(tmp_path / "exact", 32, dtype="float32")
    exact.add(ids, docs)
    want = maxsim(queries[:5], docs)
    for rerank in (vectors, exact):  # token vectors scored here, or an index's search over the candidates
        hits = stage.search(queries[:5], 10, rerank, n_candidates=len(ids))  # every document: exact search
        assert [[i for i, _ in h] for h in hits] == truth[:5]
        for qi, h in enumerate(hits):
            np.testing.assert_allclose([s for _, s in h], [want[qi, int(i[1:])] for i, _ in h], rtol=1e-5)
    few = stage.candidates(queries[:5], 30)
    for rerank in (vectors, exact):
        hits = stage.search(queries[:5], 10, rerank, n_candidates=30)
        assert [[i for i, _ in h] for h in hits] == [sorted(c, key=lambda i, r=r: -want[r, int(i[1:])])[:10]
                                                     for r, c in enumerate(few)]


def test_save_load_round_trip(stage, collection, tmp_path):
    _, _, queries, _ = collection
    stage.save(tmp_path / "m")
    stage.save(tmp_path / "m")  # a second save replaces the first
    loaded = MuveraIndex.load(tmp_path / "m")
    assert loaded.params == stage.params and loaded.ids() == stage.ids() and len(loaded) == len(stage)
    assert loaded.candidates(queries, 20) == stage.candidates(queries, 20)
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert len([n for n in names if n.endswith("-faiss.npy")]) == 1 and "manifest.json" in names


def test_load_refuses_damage(collection, tmp_path):
    ids, docs, _, _ = collection
    index = MuveraIndex(32, MuveraParams(**SMALL))
    index.add(ids[:50], docs[:50])
    index.save(tmp_path / "m")
    body = json.loads((tmp_path / "m" / "manifest.json").read_text())["body"]
    victim = tmp_path / "m" / body["roles"]["faiss"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(CorruptedError, match="faiss.npy: checksum mismatch"):
        MuveraIndex.load(tmp_path / "m")
    with pytest.raises(NotFoundError, match="no saved MUVERA index"):
        MuveraIndex.load(tmp_path / "nothing")


def test_newer_version_refused(collection, tmp_path):
    from maxsim.index.storage import Manifest
    index = MuveraIndex(32, MuveraParams(**SMALL))
    index.save(tmp_path / "m")  # an empty index saves and loads too
    assert len(MuveraIndex.load(tmp_path / "m")) == 0
    body = Manifest.read(tmp_path / "m")
    Manifest.commit(tmp_path / "m", {**body, "version": 99})
    with pytest.raises(CorruptedError, match="version 99.*rebuild"):
        MuveraIndex.load(tmp_path / "m")


@pytest.mark.parametrize("graph", ["hnsw", "ivf"])
def test_remove_is_honoured(collection, graph, tmp_path):
    ids, docs, queries, _ = collection
    index = MuveraIndex(32, MuveraParams(**SMALL, graph=graph))
    index.add(ids[:400], docs[:400])
    before = index.candidates(queries, 30)
    gone = sorted({i for c in before for i in c[:3]})[:40]  # well-ranked documents
    index.remove(gone)
    after = index.candidates(queries, 30)
    assert not set(gone) & {i for c in after for i in c} and all(len(c) == 30 for c in after)
    with pytest.raises(NotFoundError, match="nothing removed"):
        index.remove([ids[0], gone[0]])
    assert ids[0] in index
    more = [i for i in ids[:200] if i not in set(gone)][:120]
    index.remove(more)  # past 25 % tombstones: faiss rebuilt, labels renumbered
    removed = set(gone) | set(more)
    assert len(index._ids) == len(index) == 400 - len(removed)
    assert index.ids() == [i for i in ids[:400] if i not in removed]
    index.save(tmp_path / "m")
    loaded = MuveraIndex.load(tmp_path / "m")
    assert loaded.candidates(queries, 30) == index.candidates(queries, 30)
    assert not removed & {i for c in loaded.candidates(queries, 30) for i in c}
    loaded.add([gone[0]], [docs[int(gone[0][1:])]])  # a removed id may come back
    assert gone[0] in loaded.ids()


def test_subset_is_honoured(stage, collection):
    ids, docs, queries, truth = collection
    small = [t[5] for t in truth[:4]] + ids[:3]  # a few documents: scanned exhaustively
    assert all(set(c) == set(small) for c in stage.candidates(queries, 50, subset=small))
    large = ids[::2]  # half of the collection: a faiss search with a selector
    found = stage.candidates(queries, 50, subset=large)
    assert all(len(c) == 50 and set(c) <= set(large) for c in found)
    fde = stage.encoder.encode(queries, False) @ stage.encoder.encode(docs[::2], True).T
    best = [[large[j] for j in row[:50]] for row in np.argsort(-fde, axis=1, kind="stable")]
    assert recall(found, best, k=50) >= 0.95  # the subset's own FDE top 50
    mid = ids[:150]  # a tenth: exhaustive scan, ranked by FDE score
    fde = stage.encoder.encode(queries[:3], False) @ stage.encoder.encode(docs[:150], True).T
    assert stage.candidates(queries[:3], 5, subset=mid) == [[ids[j] for j in np.argsort(-row, kind="stable")[:5]]
                                                             for row in fde]
    with pytest.raises(NotFoundError, match="subset"):
        stage.candidates(queries, 5, subset=["nope"])


@pytest.mark.parametrize("field,value", [("k_sim", 0), ("k_sim", 13), ("d_proj", 0), ("repetitions", 1.5),
                                         ("final_dim", -1), ("graph", "flat"), ("storage", "int4"),
                                         ("hnsw_m", 1), ("ef_search", 0), ("ivf_nlist", 0), ("ivf_nprobe", True),
                                         ("candidates_multiplier", 0), ("seed", -1), ("k_sim", "4")])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(InvalidInputError, match=f"MuveraParams.{field}"):
        MuveraParams(**{field: value})


def test_bad_inputs(collection):
    ids, docs, queries, _ = collection
    with pytest.raises(LimitExceededError, match="k_sim, d_proj or repetitions"):
        MuveraIndex(32, MuveraParams(k_sim=12, d_proj=64, repetitions=64))
    with pytest.raises(InvalidInputError, match="dim"):
        MuveraIndex(0)
    index = MuveraIndex(32, MuveraParams(**SMALL))
    assert index.candidates(queries[:2], 5) == [[], []]  # empty index
    index.add(ids[:20], docs[:20])
    with pytest.raises(AlreadyExistsError, match="d3"):
        index.add(["new", "d3"], docs[:2])
    with pytest.raises(InvalidInputError, match="dim 16"):
        index.add(["x"], [np.ones((3, 16), np.float32)])
    with pytest.raises(InvalidInputError, match="query 0"):
        index.candidates([np.ones((2, 8), np.float32)], 5)
    with pytest.raises(InvalidInputError, match="already trained"):
        index.fit(docs[:10])
    assert len(index) == 20 and "new" not in index
