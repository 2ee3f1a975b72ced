"""MaxSim scoring against a brute-force numpy reference."""

import numpy as np
import pytest
import torch

from maxsim.scoring import maxsim, maxsim_pairwise, topk
from maxsim.search.rerank import rerank


def _brute(q, d):
    return float((q @ d.T).max(axis=1).sum()) if len(d) else 0.0


def _random(n, lengths, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(*lengths)), dim)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("block_elements", [2**25, 5000, 1])
def test_matrix_matches_brute_force_at_any_chunking(block_elements):
    queries, docs = _random(7, (1, 12), seed=1), _random(40, (1, 60), seed=2)
    docs[5] = np.zeros((0, 16), dtype=np.float32)  # an empty document scores 0
    expected = np.array([[_brute(q, d) for d in docs] for q in queries], dtype=np.float32)
    got = maxsim(queries, docs, block_elements=block_elements)
    assert got.shape == (7, 40) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert (got[:, 5] == 0).all()


def test_inputs_torch_and_3d():
    queries, docs = _random(3, (4, 5), seed=3), _random(5, (2, 9), seed=4)
    expected = maxsim(queries, docs)
    np.testing.assert_allclose(maxsim([torch.from_numpy(q) for q in queries], docs), expected)
    np.testing.assert_allclose(maxsim(np.stack(queries), docs), expected, rtol=1e-6)


def test_pairwise_matches_brute_force():
    queries, docs = _random(30, (1, 10), seed=5), _random(30, (1, 50), seed=6)
    got = maxsim_pairwise(queries, docs, batch_size=7)
    np.testing.assert_allclose(got, [_brute(q, d) for q, d in zip(queries, docs)], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="as many queries as documents"):
        maxsim_pairwise(queries, docs[:3])


def test_shape_errors_name_the_item():
    good = _random(2, (2, 3))
    with pytest.raises(ValueError, match=r"documents\[1\]"):
        maxsim(good, [np.ones((2, 16)), np.ones(16)])
    with pytest.raises(ValueError, match="dim"):
        maxsim(good, [np.ones((2, 8))])


def test_topk_orders_and_breaks_ties_by_index():
    scores = np.array([[1.0, 3.0, 3.0, 0.5], [0.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    idx, val = topk(scores, 3)
    assert idx.tolist() == [[1, 2, 0], [3, 0, 1]]
    assert val[0].tolist() == [3.0, 3.0, 1.0]
    assert topk(scores, 10)[0].shape == (2, 4)  # k larger than the corpus
    with pytest.raises(ValueError, match="k must be positive"):
        topk(scores, 0)


def test_rerank_orders_candidates():
    q = [np.array([[1.0, 0.0]], dtype=np.float32)]
    cands = [[np.array([[0.2, 0.0]]), np.array([[0.9, 0.1], [0.0, 1.0]]), np.array([[0.5, 0.5]])]]
    out = rerank(q, cands, [["a", "b", "c"]], k=2)
    assert [hit["id"] for hit in out[0]] == ["b", "c"]
    assert out[0][0]["score"] == pytest.approx(0.9)
    assert rerank(q, [[]]) == [[]]
    with pytest.raises(ValueError, match="2 ids for 3 candidate"):
        rerank(q, cands, [["a", "b"]])


def test_bfloat16_matrix_close_to_float32():
    queries, docs = _random(5, (2, 12), dim=64, seed=8), _random(30, (1, 40), dim=64, seed=9)
    docs[3] = np.zeros((0, 64), dtype=np.float32)
    want = maxsim(queries, docs)
    got = maxsim(queries, docs, dtype=torch.bfloat16)
    assert got.dtype == np.float32 and got[:, 3].tolist() == [0.0] * 5
    # each of <= 11 similarities (|q||d| ~ 64) rounded to 8 bits: within 11 * 64 * 2^-7
    np.testing.assert_allclose(got, want, atol=11 * 64 * 2.0 ** -7)
    assert np.abs(got - want).max() > 0  # it did compute in bfloat16
