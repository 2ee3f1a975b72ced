"""The PLAID codec: residual quantizers, lookup-table scoring against numpy, save/load round trips."""

import numpy as np
import pytest
import torch

from maxsim.index import PlaidParams, ResidualCodec, lut
from maxsim.index.lut import maxsim_codes, score_table
from maxsim.index.residual import ScalarQuantizer, n_groups
from maxsim.index.storage import FileWriter
from maxsim.index.synthetic import ClusteredCollection

NBITS = [1, "ternary", 2, 4]


@pytest.fixture(scope="module")
def vectors():
    coll = ClusteredCollection(400, dim=40, n_terms=256, doc_tokens=(10, 30), noise=0.5, seed=7)
    docs = coll.documents()
    return docs, np.concatenate(docs), coll.queries(5)


@pytest.fixture(scope="module")
def codecs(vectors):
    _, x, _ = vectors
    return {nbits: ResidualCodec.train(x, len(x), PlaidParams(nbits=nbits, n_centroids=64), True) for nbits in NBITS}


def test_error_and_bytes_by_codec(vectors, codecs):
    _, x, _ = vectors
    errors = []
    for nbits in NBITS:
        codec = codecs[nbits]
        codes, residuals, sse = codec.compress(x)
        assert residuals.shape == (len(x), {1: 5, "ternary": 8, 2: 10, 4: 20}[nbits]) == (len(x), codec.width)
        r = x - codec.centroids[codes]
        assert sse == pytest.approx(float((r ** 2).sum()), rel=1e-4)
        errors.append(float(((codec.decompress(codes, residuals) - x) ** 2).sum(1).mean()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.1 * errors[0], errors  # more bits, less error


def test_ternary_is_three_levels_per_dimension_five_per_byte(vectors, codecs):
    _, x, _ = vectors
    codec = codecs["ternary"]
    q = codec.quantizer
    assert isinstance(q, ScalarQuantizer) and q.levels.shape == (40, 3) and n_groups(40, "ternary") == 8
    low, mid, high = q.levels.T
    assert (low < 0).all() and (high > 0).all() and np.abs(mid).max() < 0.2 * np.minimum(-low, high).min()
    codes, residuals, _ = codec.compress(x[:200])
    assert residuals.max() < 243  # 3^5 codes per byte
    decoded = q.decode(residuals)
    for d in range(40):  # every dimension decodes to one of its three levels, the nearest one
        assert set(np.unique(decoded[:, d])) <= set(q.levels[d])
        r = x[:200, d] - codec.centroids[codes, d]
        nearest = q.levels[d][np.abs(r[:, None] - q.levels[d][None]).argmin(1)]
        np.testing.assert_array_equal(decoded[:, d], nearest)


@pytest.mark.parametrize("nbits", NBITS)
def test_lookup_table_scores_equal_numpy(vectors, codecs, nbits):
    """MaxSim from the tables = sum_i max_t (q_i . c_t + sum_p q_i[group p] . codebook[p, byte_tp])."""
    docs, x, queries = vectors
    codec = codecs[nbits]
    lens = np.array([len(d) for d in docs[:50]])
    codes, residuals, _ = codec.compress(np.concatenate(docs[:50]))
    book, group = codec.quantizer.codebook, codec.quantizer.group
    for q in queries:
        s = codec.centroids @ q.T
        padded = np.zeros((len(q), book.shape[0] * group), np.float32)
        padded[:, :40] = q
        sim = s[codes].astype(np.float64)
        for p in range(book.shape[0]):
            sim += book[p, residuals[:, p]] @ padded[:, p * group:(p + 1) * group].T
        want = [sim[a:b].max(0).sum() for a, b in zip(np.r_[0, np.cumsum(lens)[:-1]], np.cumsum(lens))]
        got = maxsim_codes(score_table(book, q, s.astype(np.float32)), codes, residuals, np.r_[0, np.cumsum(lens)],
                           np.arange(len(lens)))
        np.testing.assert_allclose(got, want, atol=2e-2)
        # and the same as MaxSim over the decompressed vectors
        dec = torch.from_numpy(codec.decompress(codes, residuals)) @ torch.from_numpy(q).T
        np.testing.assert_allclose(want, [dec[a:b].max(0).values.sum() for a, b in
                                          zip(np.r_[0, np.cumsum(lens)[:-1]], np.cumsum(lens))], rtol=1e-5)


def test_lookup_table_scores_window_by_window(vectors, codecs, monkeypatch):
    """Documents in any order, scored a few tokens at a time: the scores of one pass over them all."""
    docs, _, queries = vectors
    codec = codecs[2]
    offsets = np.r_[0, np.cumsum([len(d) for d in docs[:60]])]
    codes, residuals, _ = codec.compress(np.concatenate(docs[:60]))
    picked = np.random.default_rng(3).permutation(60)[:45]
    s = (codec.centroids @ queries[0].T).astype(np.float32)
    table = score_table(codec.quantizer.codebook, queries[0], s)
    whole = maxsim_codes(table, codes, residuals, offsets, picked)
    monkeypatch.setattr(lut, "WINDOW_TOKENS", 50)
    np.testing.assert_array_equal(maxsim_codes(table, codes, residuals, offsets, picked), whole)
    assert whole.min() > 0 and len(set(whole.tolist())) > 40


@pytest.mark.parametrize("nbits", NBITS)
def test_codec_round_trips_through_files_and_index_state(vectors, codecs, nbits, tmp_path):
    _, x, _ = vectors
    codec = codecs[nbits]
    codes, residuals, _ = codec.compress(x[:300])
    want = codec.decompress(codes, residuals)
    codec.save_file(tmp_path / "codec.npz")
    body = {"dim": 40, "params": {"nbits": nbits}}
    codec.save(FileWriter(tmp_path), body)
    for again in (ResidualCodec.load_file(tmp_path / "codec.npz"), ResidualCodec.load(tmp_path, body)):
        assert again.nbits == nbits and again.normalized and again.n_tokens == codec.n_tokens
        np.testing.assert_array_equal(again.compress(x[:300])[1], residuals)
        np.testing.assert_allclose(again.decompress(codes, residuals), want, rtol=0, atol=1e-6)
    assert sorted(body["shared_files"]) == ["centroids", "levels" if nbits == "ternary" else "codebook", "scales"]


def test_tiny_training_sets(codecs):
    """Fewer residuals than codewords: training still yields a usable codebook."""
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    for nbits in NBITS:
        codec = ResidualCodec.train(x, 5, PlaidParams(nbits=nbits), False)
        codes, residuals, _ = codec.compress(x)
        assert np.isfinite(codec.decompress(codes, residuals)).all()
