"""Centroids of the PLAID codec: faiss k-means and nearest-centroid assignment, with a
product-quantized fast scan proposing candidates once there are many centroids, as many as keep
the exhaustive scan's residual on a sample of the vectors (``assignment_index``).

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
    added 10,000 at a time, with 2 proposals always (``assignment_index``): recall@10 0.950 with the
    first add's 4,096 centroids, 0.954 re-clustered to 8,192 at the second add, for a 52-65 s build
    instead of 34; built at once: 0.964, 74 s)."""
    wanted = auto_n_centroids(n_tokens)
    return wanted > n_centroids and wanted >= min(4 * n_centroids, MAX_AUTO_CENTROIDS)


def unit_norm(x: np.ndarray) -> bool:
    """Whether the rows of ``x`` (checked on the first 65,536) have norm 1 (to 1e-2)."""
    return bool(len(x) == 0 or np.abs(np.linalg.norm(x[: 1 << 16], axis=1) - 1).max() < 1e-2)


FAST_ASSIGN_FROM = 2048  # centroids from which assignment may go through a product-quantized scan
PROPOSALS = (2, 4, 8, 16)  # centroids the fast scan proposes per vector, tried in turn (32: as slow as exhaustive)
CALIBRATION_ROWS = 4096  # vectors the proposals are chosen on
RESIDUAL_SLACK = 1.01  # the fast scan's mean squared residual may exceed the exhaustive scan's by 1 %
ROUGH_POINTS = 8  # sample rows per centroid of the k-means iteration the proposals are chosen on
KMEANS_SLACK = 1.05  # the same, for k-means's own assignments, measured on those rough centroids


def _metric(normalized: bool) -> int:
    """Inner product for unit-norm data, else L2."""
    return faiss.METRIC_INNER_PRODUCT if normalized else faiss.METRIC_L2


def _exhaustive(centroids: np.ndarray, normalized: bool) -> faiss.Index:
    """``centroids`` (K, dim) in faiss's exhaustive scan."""
    index = faiss.IndexFlat(centroids.shape[1], _metric(normalized))
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assignment_index(centroids: np.ndarray, normalized: bool, probe: np.ndarray, train: np.ndarray,
                     slack: float = RESIDUAL_SLACK) -> faiss.Index:
    """``centroids`` (K, dim) in faiss's 4-bit product-quantized fast scan (8 dims per sub-quantizer,
    codebooks trained on ``train``), which proposes centroids for an exact re-ranking to keep the
    nearest, with the fewest PROPOSALS that assign ``probe`` (m, dim) at a mean squared residual
    within ``slack`` of the exhaustive scan's; the exhaustive scan when even the most do not.

    Fitted on synthetic 128-dim documents (noise 0.6) and Cranfield (384 dims), where the count
    fixed at 2 before gave the exhaustive centroid to 99.2 % / 81.4 % of vectors (residual +1.3 % /
    +4.2 %); now 4 / 8 proposals, +0.6 % / +0.9 %. Held out: nq-kd + msmarco-kd tokens (4, +0.5 %)
    and synthetic 64-dim noise 0.9 (exhaustive; 2 proposals: 41 %, +18 %, recall@10 0.735 against
    0.914; ``bench/codec.py``)."""
    exact = _exhaustive(centroids, normalized)
    if centroids.shape[1] % 8 or not len(probe):
        return exact
    pq = faiss.IndexPQFastScan(centroids.shape[1], centroids.shape[1] // 8, 4, _metric(normalized))
    pq.pq.cp.niter = 10  # (25 by default: the codebooks only propose candidates)
    fast = faiss.IndexRefineFlat(pq)
    fast.train(np.ascontiguousarray(train[:: max(1, len(train) >> 14)], dtype=np.float32))
    fast.add(np.ascontiguousarray(centroids, dtype=np.float32))
    probe = np.ascontiguousarray(probe, dtype=np.float32)
    limit = slack * _squared_residual(probe, centroids, exact)
    for count in PROPOSALS:
        fast.k_factor = count
        if _squared_residual(probe, centroids, fast) <= limit:
            return fast
    return exact


def _squared_residual(x: np.ndarray, centroids: np.ndarray, index: faiss.Index) -> float:
    """Sum of the squared distances of ``x`` to the centroids ``index`` assigns them."""
    r = x - centroids[index.search(x, 1)[1][:, 0]]
    return float(np.einsum("ij,ij->", r, r))


def _probe(x: np.ndarray) -> np.ndarray:
    """At most CALIBRATION_ROWS rows of ``x`` spread over it."""
    return x[:: max(1, len(x) // CALIBRATION_ROWS)][:CALIBRATION_ROWS]


def kmeans(sample: np.ndarray, n_c: int, niter: int, seed: int, normalized: bool) -> np.ndarray:
    """(n_c, dim) float32 centroids (``int8_rows`` values) of faiss k-means on ``sample`` (n, dim) float32
    (spherical for unit-norm data); from FAST_ASSIGN_FROM centroids on, each iteration assigns
    through the ``assignment_index`` chosen with ``_rough_centroids`` (64-dim noise 0.9 set, 2
    proposals always: held-out residual 0.871 against 0.603 for exhaustive k-means)."""
    if n_c < FAST_ASSIGN_FROM:
        return _train(sample, n_c, niter, seed, normalized, faiss.IndexFlat(sample.shape[1], _metric(normalized)))
    index = assignment_index(_rough_centroids(sample, n_c, seed, normalized), normalized, _probe(sample), sample,
                             KMEANS_SLACK)
    index.reset()  # (k-means adds its own centroids)
    return _train(sample, n_c, niter, seed, normalized, index)


def _rough_centroids(sample: np.ndarray, n_c: int, seed: int, normalized: bool) -> np.ndarray:
    """One exhaustive k-means iteration over ROUGH_POINTS * n_c rows of ``sample``: centroids like the
    final ones to choose the proposals on (random rows as centroids overstate the fast scan's error:
    +9.6 % with 2 proposals on the synthetic set where k-means through it does as well as exhaustive)."""
    rows = np.random.default_rng(seed).choice(len(sample), min(len(sample), ROUGH_POINTS * n_c), replace=False)
    flat = faiss.IndexFlat(sample.shape[1], _metric(normalized))
    return _train(sample[np.sort(rows)], n_c, 1, seed, normalized, flat)


def _train(sample: np.ndarray, n_c: int, niter: int, seed: int, normalized: bool, index: faiss.Index) -> np.ndarray:
    """faiss k-means of ``sample`` into n_c centroids, assigning through ``index`` (empty)."""
    cp = faiss.ClusteringParameters()
    cp.niter, cp.seed, cp.spherical = niter, seed, normalized
    cp.min_points_per_centroid, cp.max_points_per_centroid = 1, max(1, -(-len(sample) // n_c))
    clustering = faiss.Clustering(sample.shape[1], n_c, cp)
    clustering.train(sample, index)
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


def centroid_index(centroids: np.ndarray, normalized: bool, x: np.ndarray) -> faiss.Index:
    """``centroids`` (K, dim) in an index to assign the rows of ``x`` (n, dim) with: from
    FAST_ASSIGN_FROM centroids and more than 4 K vectors on, the ``assignment_index`` chosen on rows
    of ``x``; else the exhaustive scan."""
    if len(centroids) >= FAST_ASSIGN_FROM and len(x) > 4 * len(centroids):
        return assignment_index(centroids, normalized, _probe(x), centroids)
    return _exhaustive(centroids, normalized)


def assign_centroids(x: np.ndarray, centroids: np.ndarray, normalized: bool) -> np.ndarray:
    """(n,) int64: the nearest of ``centroids`` (K, dim) for each row of ``x`` (n, dim) (``centroid_index``)."""
    index = centroid_index(centroids, normalized, x)
    codes = np.empty(len(x), dtype=np.int64)
    step = 1 << 16
    for s in range(0, len(x), step):
        codes[s: s + step] = index.search(np.ascontiguousarray(x[s: s + step], dtype=np.float32), 1)[1][:, 0]
    return codes
