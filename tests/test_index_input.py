"""Bad input gives clear errors naming the item, and nothing stored is lost."""

import numpy as np
import pytest

from maxsim.index import ExactIndex, PlaidIndex, open_index

DIM = 8


@pytest.fixture(params=["exact", "plaid"])
def index(request, tmp_path):
    cls = ExactIndex if request.param == "exact" else PlaidIndex
    ix = cls.create(tmp_path / "ix", DIM)
    rng = np.random.default_rng(0)
    ix.add([f"d{i}" for i in range(20)], [rng.standard_normal((5, DIM)).astype(np.float32) for _ in range(20)],
           metadata=[{"i": i} for i in range(20)])
    return ix


def unchanged(ix):
    again = open_index(ix.folder)
    assert again.ids() == [f"d{i}" for i in range(20)] and ix.ids() == again.ids()
    assert again.metadata("d3") == {"i": 3}


def v(n=3, dim=DIM, fill=0.5):
    return np.full((n, dim), fill, np.float32)


@pytest.mark.parametrize("ids,embs,match", [
    (["x"], [v(dim=DIM + 1)], "'x'.*dim 9.*dim 8"),
    (["x"], [np.zeros(DIM, np.float32)], "'x'.*shape"),
    (["x", "y"], [v(), v(fill=np.nan)], "'y'.*NaN or inf"),
    (["x"], [v(fill=np.inf)], "'x'.*NaN or inf"),
    (["x", "x"], [v(), v()], "duplicate id 'x'"),
    (["x", "d4"], [v(), v()], "already in the index.*d4"),
    (["x"], [v(), v()], "1 ids but 2 embeddings"),
])
def test_bad_add(index, ids, embs, match):
    with pytest.raises(ValueError, match=match):
        index.add(ids, embs)
    unchanged(index)


def test_bad_add_types_and_metadata(index):
    with pytest.raises(TypeError, match="strings"):
        index.add([3], [v()])
    with pytest.raises(TypeError, match="not one string"):
        index.add("abc", [v()])
    with pytest.raises(ValueError, match="'x'.*JSON"):
        index.add(["x"], [v()], metadata=[{"f": object()}])
    with pytest.raises(ValueError, match="metadata entries"):
        index.add(["x"], [v()], metadata=[{}, {}])
    unchanged(index)


def test_float16_overflow_rejected(tmp_path):
    ix = ExactIndex.create(tmp_path / "e", DIM, dtype="float16")
    with pytest.raises(ValueError, match="'x'.*exceed"):
        ix.add(["x"], [v(fill=1e6)])


def test_bad_remove(index):
    with pytest.raises(KeyError, match="nope"):
        index.remove(["d1", "nope"])
    with pytest.raises(ValueError, match="duplicate id 'd1'"):
        index.remove(["d1", "d1"])
    unchanged(index)


@pytest.mark.parametrize("queries,k,err,match", [
    ([np.zeros((0, DIM), np.float32)], 10, ValueError, "query 0 is empty"),
    ([v(), v(dim=4)], 10, ValueError, "query 1 has dim 4"),
    ([v(fill=np.nan)], 10, ValueError, "query 0 contains NaN"),
    (v(), 10, ValueError, "list of queries"),
    ([v()], 0, ValueError, "k must be positive"),
    ([v()], -3, ValueError, "k must be positive"),
    ([v()], 2.5, TypeError, "k must be an integer"),
])
def test_bad_search(index, queries, k, err, match):
    with pytest.raises(err, match=match):
        index.search(queries, k=k)
    unchanged(index)


def test_search_edge_cases(index):
    assert index.search([], k=3) == []
    with pytest.raises(KeyError, match="unknown"):
        index.search([v()], k=3, subset=["d1", "zzz"])
    assert index.search([v()], k=3, subset=[]) == [[]]
    hits = index.search([v()], k=100)[0]
    # exact returns every document; PLAID returns the candidates its probed centroids reach
    assert (len(hits) == 20 if index.kind == "exact" else 10 <= len(hits) <= 20)
    assert all(isinstance(s, float) for _, s in hits) and len({i for i, _ in hits}) == len(hits)


def test_bad_create(tmp_path):
    with pytest.raises(ValueError, match="dim"):
        ExactIndex.create(tmp_path / "a", 0)
    with pytest.raises(ValueError, match="nbits"):
        PlaidIndex.create(tmp_path / "b", DIM, nbits=3)
    with pytest.raises(TypeError, match="unknown PlaidParams field.*nprobe"):
        PlaidIndex.create(tmp_path / "c", DIM, nprobe=3)
    ExactIndex.create(tmp_path / "d", DIM)
    with pytest.raises(FileExistsError):
        PlaidIndex.create(tmp_path / "d", DIM)
    with pytest.raises(ValueError, match="'exact' index"):
        PlaidIndex.open(tmp_path / "d")
    with pytest.raises(ValueError, match="n_full_scores"):
        PlaidIndex.create(tmp_path / "e", DIM).search([v()], k=1, n_full_scores=0)


def test_empty_documents_allowed(tmp_path):
    for cls in (ExactIndex, PlaidIndex):
        ix = cls.create(tmp_path / cls.kind, DIM)
        ix.add(["empty", "full"], [np.zeros((0, DIM), np.float32), v()])
        hits = dict(ix.search([v()], k=5)[0])
        assert "full" in hits
        assert ix.get_embeddings(["empty"])[0].shape == (0, DIM)
