"""Every reference model in tests/fixtures/models reproduces its library's own outputs."""

import numpy as np
import pytest

from conftest import MODELS, REFERENCE_MODELS, probe_texts
from maxsim import MultiVectorEncoder

QUERIES, DOCUMENTS = probe_texts()


@pytest.fixture(scope="module", params=REFERENCE_MODELS)
def loaded(request):
    name = request.param
    model = MultiVectorEncoder(MODELS / name, device="cpu", dtype="float32")
    return name, model, np.load(MODELS / f"{name}.reference.npz")


def _assert_same(ours, reference, prefix):
    assert len(ours) == len([k for k in reference.files if k.startswith(prefix + "_")])
    for i, vectors in enumerate(ours):
        expected = reference[f"{prefix}_{i}"]
        assert vectors.dtype == np.float32
        assert vectors.shape == expected.shape, f"{prefix} {i}: token count differs"
        np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)


def test_queries_match_reference(loaded):
    _, model, reference = loaded
    _assert_same(model.encode_query(QUERIES), reference, "query")


def test_documents_match_reference(loaded):
    _, model, reference = loaded
    _assert_same(model.encode_document(DOCUMENTS), reference, "document")


def test_similarity_matches_reference(loaded):
    _, model, reference = loaded
    scores = model.similarity(model.encode_query(QUERIES), model.encode_document(DOCUMENTS))
    assert scores.shape == reference["similarity"].shape and scores.dtype == np.float32
    np.testing.assert_allclose(scores, reference["similarity"], atol=1e-4, rtol=0)


def test_batch_size_does_not_change_vectors(loaded):
    _, model, reference = loaded
    _assert_same(model.encode_document(DOCUMENTS, batch_size=3), reference, "document")


@pytest.mark.parametrize("name,layout", [("st6-tiny-bert", "sentence-transformers-6"),
                                         ("seed-layout-tiny-modernbert", "card-pre-release"),
                                         ("pylate-tiny-bert", "pylate"), ("stanford-tiny-bert", "stanford")])
def test_layout_is_detected(name, layout):
    assert MultiVectorEncoder(MODELS / name, device="cpu", dtype="float32").layout == layout


def test_query_expansion_and_truncation(tiny_model):
    """Queries are exactly 32 vectors (expanded or truncated); documents are cut at 180 tokens."""
    q = tiny_model.encode_query(["define extreme", "a " * 100])
    assert [x.shape[0] for x in q] == [32, 32]
    features = tiny_model.preprocess(["define extreme"], task="query")
    n_real = int(features["attention_mask"][0].sum())
    assert features["expansion_positions"][0].sum() == 32 - n_real
    assert (features["input_ids"][0, n_real:] == tiny_model.tokenizer.mask_token_id).all()
    long_doc = tiny_model.tokenize(["word " * 1000], task="document")[0]
    assert len(long_doc) == 180
