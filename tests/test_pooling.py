"""Token pooling against sentence-transformers 6.2's HierarchicalTokenPooling, and the similarity names."""

import json

import numpy as np
import pytest
import torch

from conftest import MODELS, probe_texts
from maxsim import ModelLoadError, MultiVectorEncoder
from maxsim.models import HierarchicalTokenPooling
from maxsim.models.pooling import pool_embeddings

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling as STPooling  # noqa: E402

QUERIES, DOCUMENTS = probe_texts()


def random_documents(seed=0, n=12, dim=16):
    rng = np.random.default_rng(seed)
    docs = [rng.standard_normal((int(rng.integers(1, 60)), dim)).astype(np.float32) for _ in range(n)]
    return [d / np.linalg.norm(d, axis=1, keepdims=True) for d in docs]


@pytest.mark.parametrize("pool_factor,protected,normalize", [(2, 1, True), (3, 0, False), (1.5, 2, True)])
def test_pool_embeddings_equals_sentence_transformers(pool_factor, protected, normalize):
    docs = random_documents()
    ours = pool_embeddings(docs, pool_factor, protected_tokens=protected, normalize=normalize)
    theirs = STPooling(pool_factor, num_protected_tokens=protected, normalize_embeddings=normalize).pool(
        [torch.from_numpy(d) for d in docs])
    assert [x.shape for x in ours] == [tuple(y.shape) for y in theirs]
    for x, y in zip(ours, theirs):
        np.testing.assert_allclose(x, y.numpy(), atol=1e-5)
    assert sum(len(x) for x in ours) < sum(len(d) for d in docs)


def test_pool_factor_one_returns_the_input_and_bad_factors_are_refused():
    docs = random_documents(n=3)
    assert pool_embeddings(docs, 1) is docs
    assert [len(x) for x in pool_embeddings(docs, 2)] == [1 + max((len(d) - 1) // 2, 1) if len(d) > 2 else len(d)
                                                          for d in docs]
    for bad in (0, 0.5, "2", True, None):
        with pytest.raises(ValueError, match="pool_factor"):
            pool_embeddings(docs, bad)
    with pytest.raises(ValueError, match="embeddings\\[0\\]"):
        pool_embeddings([np.zeros(4, dtype=np.float32)], 2)


@pytest.fixture(scope="module")
def st_pooled_folder(tmp_path_factory):
    """A checkpoint written by sentence-transformers: st6-tiny-bert + HierarchicalTokenPooling(2)."""
    model = st.MultiVectorEncoder(str(MODELS / "st6-tiny-bert"), device="cpu")
    model.append(STPooling(2))
    folder = tmp_path_factory.mktemp("pooled") / "model"
    model.save(str(folder))
    return folder, model


def test_sentence_transformers_pooling_checkpoint_loads_with_equal_vectors(st_pooled_folder):
    folder, theirs = st_pooled_folder
    ours = MultiVectorEncoder(folder, device="cpu", dtype="float32")
    assert isinstance(ours.steps[-1], HierarchicalTokenPooling) and ours.steps[-1].pool_factor == 2
    for encode in ("encode_document", "encode_query"):
        a = getattr(ours, encode)(DOCUMENTS, batch_size=3)
        b = getattr(theirs, encode)(DOCUMENTS, batch_size=3, convert_to_numpy=True)
        assert [x.shape for x in a] == [y.shape for y in b]
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-5)
    unpooled = MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu", dtype="float32")
    assert sum(map(len, ours.encode_document(DOCUMENTS))) < sum(map(len, unpooled.encode_document(DOCUMENTS)))


def test_saved_pooling_round_trips_through_sentence_transformers(st_pooled_folder, tmp_path):
    folder, _ = st_pooled_folder
    MultiVectorEncoder(folder, device="cpu", dtype="float32").save(tmp_path / "again")
    theirs = st.MultiVectorEncoder(str(tmp_path / "again"), device="cpu")
    assert isinstance(theirs[-1], STPooling) and theirs[-1].pool_factor == 2 and theirs[-1].normalize_embeddings
    ours = MultiVectorEncoder(tmp_path / "again", device="cpu", dtype="float32").encode_document(DOCUMENTS)
    for x, y in zip(ours, theirs.encode_document(DOCUMENTS, convert_to_numpy=True)):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_config_without_normalize_key_means_no_normalisation(st_pooled_folder, tmp_path):
    folder, _ = st_pooled_folder
    module = HierarchicalTokenPooling.from_config({"pool_factor": 2, "num_protected_tokens": 1, "tasks": ["document"]})
    assert module.normalize_embeddings is False
    with pytest.raises(ValueError, match="num_protected_tokens"):
        HierarchicalTokenPooling(2, num_protected_tokens=-1)


def _with_similarity(source, folder, name):
    import shutil

    shutil.copytree(source, folder)
    path = folder / "config_sentence_transformers.json"
    config = json.loads(path.read_text())
    config["similarity_fn_name"] = name
    path.write_text(json.dumps(config))
    return folder


def test_meanmaxsim_scores_as_sentence_transformers(tmp_path):
    folder = _with_similarity(MODELS / "st6-tiny-bert", tmp_path / "mean", "meanmaxsim")
    ours = MultiVectorEncoder(folder, device="cpu", dtype="float32")
    theirs = st.MultiVectorEncoder(str(folder), device="cpu")
    assert ours.similarity_fn_name == theirs.similarity_fn_name == "meanmaxsim"
    q, d = ours.encode_query(QUERIES), ours.encode_document(DOCUMENTS)
    expected = theirs.similarity([torch.from_numpy(x) for x in q], [torch.from_numpy(x) for x in d]).numpy()
    np.testing.assert_allclose(ours.similarity(q, d), expected, rtol=1e-5, atol=1e-6)
    pairs = theirs.similarity_pairwise([torch.from_numpy(x) for x in q[:3]], [torch.from_numpy(x) for x in d[:3]])
    np.testing.assert_allclose(ours.similarity_pairwise(q[:3], d[:3]), pairs.numpy(), rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())[
        "similarity_fn_name"] == "meanmaxsim"


@pytest.mark.parametrize("name", ["cosine", "MaxSim", "dot"])
def test_names_sentence_transformers_ignores_score_as_maxsim(tmp_path, name):
    folder = _with_similarity(MODELS / "st6-tiny-bert", tmp_path / name, name)
    ours = MultiVectorEncoder(folder, device="cpu", dtype="float32")
    theirs = st.MultiVectorEncoder(str(folder), device="cpu")
    assert ours.similarity_fn_name == theirs.similarity_fn_name == "maxsim"


@pytest.mark.parametrize("name", ["xtr", "l2", "bm25"])
def test_other_similarity_names_are_refused_at_load(tmp_path, name):
    folder = _with_similarity(MODELS / "st6-tiny-bert", tmp_path / name, name)
    with pytest.raises(ModelLoadError, match=f"config_sentence_transformers.json.*{name}"):
        MultiVectorEncoder(folder, device="cpu")


def test_stanford_l2_similarity_is_refused(tmp_path):
    import shutil

    folder = tmp_path / "stanford"
    shutil.copytree(MODELS / "stanford-tiny-bert", folder)
    meta = json.loads((folder / "artifact.metadata").read_text())
    meta["similarity"] = "l2"
    (folder / "artifact.metadata").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="artifact.metadata.*'l2'"):
        MultiVectorEncoder(folder, device="cpu")
