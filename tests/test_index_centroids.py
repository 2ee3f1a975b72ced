"""Centroid assignment and k-means: the product-quantized fast scan is used only where it keeps the
exhaustive scan's residual; elsewhere the exhaustive scan runs."""

import faiss
import numpy as np

from maxsim.index import centroids as C
from maxsim.index.synthetic import ClusteredCollection


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _residual(x: np.ndarray, centroids: np.ndarray, codes=None) -> float:
    """Mean squared residual of ``x`` against ``centroids[codes]`` (the exhaustive nearest by default)."""
    if codes is None:
        flat = faiss.IndexFlatIP(centroids.shape[1])
        flat.add(centroids)
        codes = flat.search(x, 1)[1][:, 0]
    r = x - centroids[codes]
    return float((r * r).sum(1).mean())


def test_clustered_vectors_take_the_fast_scan_within_its_slack():
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((2048, 128)))
    x = _unit(centres[rng.integers(0, 2048, 20_000)] + 0.05 * rng.standard_normal((20_000, 128)))
    index = C.centroid_index(centres, True, x)
    assert isinstance(index, faiss.IndexRefineFlat) and index.k_factor in C.PROPOSALS
    assert _residual(x, centres, C.assign_centroids(x, centres, True)) <= 1.02 * _residual(x, centres)


def test_vectors_the_fast_scan_misplaces_are_assigned_exhaustively():
    rng = np.random.default_rng(1)
    x, centroids = _unit(rng.standard_normal((20_000, 64))), _unit(rng.standard_normal((2048, 64)))
    assert isinstance(C.centroid_index(centroids, True, x), faiss.IndexFlat)
    flat = faiss.IndexFlatIP(64)
    flat.add(centroids)
    assert np.array_equal(C.assign_centroids(x, centroids, True), flat.search(x, 1)[1][:, 0])


def test_kmeans_where_the_fast_scan_misplaces_does_as_well_as_exhaustive_kmeans():
    tokens = np.concatenate(ClusteredCollection(50_000, dim=64, noise=0.9, seed=4).documents(0, 800))
    sample, held = np.ascontiguousarray(tokens[:40_000]), np.ascontiguousarray(tokens[40_000:45_000])
    ours = C.kmeans(sample, 2048, 4, 0, True)
    exhaustive = faiss.Kmeans(64, 2048, niter=4, seed=0, spherical=True, min_points_per_centroid=1,
                              max_points_per_centroid=20)
    exhaustive.train(sample)
    assert _residual(held, ours) <= 1.02 * _residual(held, exhaustive.centroids)  # 2 proposals always: 1.16x
