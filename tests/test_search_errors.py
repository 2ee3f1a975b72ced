"""Bad input to the Retriever raises a clear error and loses nothing already stored."""

import json

import pytest

from conftest import MODELS
from maxsim import MultiVectorEncoder
from maxsim.index.exact import ExactIndex
from maxsim.search import Retriever

TINY = str(MODELS / "st6-tiny-bert")
TEXTS = ["lift of a thin wing", "heat flux in a slab", "buckling of cylindrical shells"]


@pytest.fixture()
def retriever(tmp_path, tiny_model):
    r = Retriever.create(tmp_path / "r", tiny_model, hybrid=True, model_name=TINY)
    r.add(TEXTS, ids=["a", "b", "c"], metadata=[{"k": 1}, None, {"k": 3}])
    yield r
    r.close()


def assert_intact(r):
    with r.versions.reading() as (snap, index):
        assert snap.all_texts() == (["a", "b", "c"], TEXTS)
        assert len(index) == snap.counts()["passages"] == 3
        assert r.bm25.get(snap.bm25, snap.all_texts).ids == ["a", "b", "c"]
    assert len(r) == 3 and r.get("c").metadata == {"k": 3}
    assert r.search(TEXTS[1], k=1)[0][0].id == "b"


@pytest.mark.parametrize("query", ["", "   ", ["fine", ""]])
def test_empty_query(retriever, query):
    with pytest.raises(ValueError, match="empty"):
        retriever.search(query)
    with pytest.raises(ValueError, match="empty"):
        retriever.explain(" ", "a")


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k(retriever, k):
    with pytest.raises(ValueError, match="k must be"):
        retriever.search("wing", k=k)


def test_bad_search_options(retriever):
    with pytest.raises(ValueError, match="fusion"):
        retriever.search("wing", hybrid=True, fusion="max")
    with pytest.raises(KeyError, match="nope"):
        retriever.search("wing", subset=["a", "nope"])
    with pytest.raises(TypeError, match="query 0"):
        retriever.search([b"wing"])
    assert retriever.search("wing", subset=[]) == [[]]
    assert retriever.search([], k=3) == []


def test_unknown_ids(retriever):
    with pytest.raises(KeyError, match="'zz'"):
        retriever.remove(["a", "zz"])
    with pytest.raises(KeyError, match="'zz'"):
        retriever.get("zz")
    with pytest.raises(KeyError, match="'zz'"):
        retriever.explain("wing", "zz")
    assert_intact(retriever)


def test_duplicate_ids(retriever):
    with pytest.raises(ValueError, match="'x' twice"):
        retriever.add(["one", "two"], ids=["x", "x"])
    with pytest.raises(ValueError, match="'b' is already in"):
        retriever.add(["one", "two"], ids=["y", "b"])
    with pytest.raises(ValueError, match="'a' twice"):
        retriever.remove(["a", "a"])
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        retriever.add(["one"], ids=["p", "q"])
    assert_intact(retriever)
    with pytest.raises(KeyError):
        retriever.get("y")


@pytest.mark.parametrize("texts, error, match", [
    ("just one string", TypeError, "list of strings"),
    (["ok", 3], TypeError, r"texts\[1\] is int"),
    (["ok", None], TypeError, r"texts\[1\] is NoneType"),
])
def test_texts_not_str(retriever, texts, error, match):
    with pytest.raises(error, match=match):
        retriever.add(texts)
    assert_intact(retriever)


def test_bad_ids_and_metadata(retriever):
    with pytest.raises(TypeError, match=r"ids\[0\]"):
        retriever.add(["one"], ids=[7])
    with pytest.raises(TypeError, match=r"metadata\[0\] is list"):
        retriever.add(["one"], metadata=[[1, 2]])
    with pytest.raises(ValueError, match=r"metadata\[1\]\['x'\] is a object"):
        retriever.add(["one", "two"], metadata=[None, {"x": object()}])
    with pytest.raises(ValueError, match="2 metadata entries for 1 texts"):
        retriever.add(["one"], metadata=[None, None])
    assert retriever.add([]) == []
    assert_intact(retriever)


def test_failed_index_add_keeps_store_consistent(retriever, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ExactIndex, "add", broken)
    with pytest.raises(OSError, match="disk full"):
        retriever.add(["new text"], ids=["n"])
    monkeypatch.undo()
    with pytest.raises(KeyError):
        retriever.get("n")
    assert_intact(retriever)


def test_folder_errors(tmp_path, tiny_model, retriever):
    with pytest.raises(FileExistsError, match="not empty"):
        Retriever.create(retriever.folder, tiny_model, model_name=TINY)
    with pytest.raises(FileNotFoundError, match="not a retriever folder"):
        Retriever.open(tmp_path)
    with pytest.raises(ValueError, match="index must be 'auto' or one of"):
        Retriever.create(tmp_path / "x", tiny_model, index="hnsw", model_name=TINY)
    backbone_only = MultiVectorEncoder(modules=[tiny_model.transformer], device="cpu")  # 64-dim, not 32
    assert backbone_only.dim != tiny_model.dim
    with pytest.raises(ValueError, match="64-dim"):
        Retriever.open(retriever.folder, model=backbone_only)
    manifest = json.loads((retriever.folder / "retriever.json").read_text())
    assert manifest["model"] == TINY and manifest["kind"] == "exact" and manifest["hybrid"] is True
