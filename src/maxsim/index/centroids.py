"""Centroids of the PLAID codec: faiss k-means and nearest-centroid assignment, with a
product-quantized fast scan proposing candidates once there are many centroids.

``auto_n_centroids`` is the default centroid count for a collection size.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

MAX_AUTO_CENTROIDS = 1 << 13


def auto_n_centroids(n_tokens: int) -> int:
    """2^floor(log2(8 sqrt(T))) for T token vectors, at most 8,192 (bounds CPU build time) and at
    most 2^floor(log2(T / 8)) (at least 8 vectors per centroid), at least 1."""
    by_sqrt = min(MAX_AUTO_CENTROIDS, 1 << int(math.floor(math.log2(max(8.0 * math.sqrt(max(n_tokens, 1)), 1.0)))))
    by_size = 1 << int(math.floor(math.log2(max(n_tokens / 8.0, 1.0))))
    return max(1, min(by_sqrt, by_size))


def outgrown(n_centroids: int, n_tokens: int) -> bool:
    """Whether a codec of ``n_centroids`` chosen by ``auto_n_centroids`` is due for re-clustering at
    ``n_tokens``: the rule asks for 4x as many, or for its cap (MAX_AUTO_CENTROIDS), which a codec
    trained on a first add of 250k-1M tokens would otherwise never reach (100k synthetic documents
    added 10,000 at a time: recall@10 0.950 with the first add's 4,096 centroids, 0.954 re-clustered
    to 8,192 at the second add, for a 52-65 s build instead of 34; built at once: 0.964, 74 s)."""
    wanted = auto_n_centroids(n_tokens)
    return wanted > n_centroids and wanted >= min(4 * n_centroids, MAX_AUTO_CENTROIDS)


def unit_norm(x: np.ndarray) -> bool:
    """Whether the rows of ``x`` (checked on the first 65,536) have norm 1 (to 1e-2)."""
    return bool(len(x) == 0 or np.abs(np.linalg.norm(x[: 1 << 16], axis=1) - 1).max() < 1e-2)


FAST_ASSIGN_FROM = 2048  # centroids from which assignment goes through a product-quantized scan


def _assignment_index(dim: int, normalized: bool, train: np.ndarray | None = None) -> faiss.Index:
    """An empty index to search centroids with (inner product for unit-norm data, else L2): the
    exhaustive scan, or with ``train`` (m, dim) faiss's 4-bit product-quantized fast scan (8 dims
    per sub-quantizer, codebooks trained on ``train``) proposing 2 centroids per vector, of which an
    exact re-ranking keeps the nearest: 2.4x faster than the exhaustive scan on 2 cores, the same
    centroid for 99% of vectors, and a second-nearest one only makes that residual slightly larger
    (mean squared residual 1.6% above the exhaustive assignment's; ``bench/codec.py``)."""
    metric = faiss.METRIC_INNER_PRODUCT if normalized else faiss.METRIC_L2
    if train is None or dim % 8:
        return faiss.IndexFlat(dim, metric)
    pq = faiss.IndexPQFastScan(dim, dim // 8, 4, metric)
    pq.pq.cp.niter = 10  # (25 by default: the codebooks only propose candidates)
    index = faiss.IndexRefineFlat(pq)
    index.k_factor = 2
    index.train(np.ascontiguousarray(train[:: max(1, len(train) >> 14)], dtype=np.float32))
    return index


def kmeans(sample: np.ndarray, n_c: int, niter: int, seed: int, normalized: bool) -> np.ndarray:
    """(n_c, dim) float32 centroids (``int8_rows`` values) of faiss k-means on ``sample`` (n, dim) float32
    (spherical for unit-norm data); from FAST_ASSIGN_FROM centroids on, each iteration assigns
    through ``_assignment_index``."""
    cp = faiss.ClusteringParameters()
    cp.niter, cp.seed, cp.spherical = niter, seed, normalized
    cp.min_points_per_centroid, cp.max_points_per_centroid = 1, max(1, -(-len(sample) // n_c))
    clustering = faiss.Clustering(sample.shape[1], n_c, cp)
    clustering.train(sample, _assignment_index(sample.shape[1], normalized,
                                               sample if n_c >= FAST_ASSIGN_FROM else None))
    centroids = faiss.vector_to_array(clustering.centroids).reshape(n_c, sample.shape[1])
    q, scale = int8_rows(centroids)
    return q * scale[:, None]


def int8_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 -> int8 values and per-row float32 scales (max |x| / 127): how centroids are
    stored, half of float16's bytes (0.9 B/token on the 20k set), an error below 0.4 % of a
    row's largest value. Rows that are already ``q * scale`` map back to the same ``q``."""
    scale = (np.abs(x).max(axis=1) / 127).astype(np.float32)
    scale[scale == 0] = 1.0
    return np.round(x / scale[:, None]).astype(np.int8), scale


def centroid_index(centroids: np.ndarray, normalized: bool, n_queries: int) -> faiss.Index:
    """``centroids`` (K, dim) in the index ``_assignment_index`` picks for ``n_queries`` vectors: the
    fast scan from FAST_ASSIGN_FROM centroids and more than 4 K vectors on, else the exhaustive one."""
    fast = len(centroids) >= FAST_ASSIGN_FROM and n_queries > 4 * len(centroids)
    index = _assignment_index(centroids.shape[1], normalized, centroids if fast else None)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assign_centroids(x: np.ndarray, centroids: np.ndarray, normalized: bool) -> np.ndarray:
    """(n,) int64: the nearest of ``centroids`` (K, dim) for each row of ``x`` (n, dim) (``centroid_index``)."""
    index = centroid_index(centroids, normalized, len(x))
    codes = np.empty(len(x), dtype=np.int64)
    step = 1 << 16
    for s in range(0, len(x), step):
        codes[s: s + step] = index.search(np.ascontiguousarray(x[s: s + step], dtype=np.float32), 1)[1][:, 0]
    return codes
