"""PLAID residual compression: nearest-centroid codes, bucketed residuals packed nbits per value."""

from __future__ import annotations

import math

import faiss
import numpy as np
import torch


def assign_centroids(x: np.ndarray, centroids: np.ndarray, normalized: bool) -> np.ndarray:
    """Nearest centroid of each row (inner product for unit-norm data, else L2). From 2,048
    centroids on, a two-level faiss index (IVF over the centroids, 1/8 of its lists probed)
    replaces the exhaustive scan: ~6x less work, and a rare second-nearest centroid only makes
    that token's residual slightly larger."""
    n_c, dim = centroids.shape
    metric = faiss.METRIC_INNER_PRODUCT if normalized else faiss.METRIC_L2
    if n_c >= 2048 and len(x) > 4 * n_c:
        nlist = 1 << int(round(math.log2(math.sqrt(n_c))))
        quantizer = faiss.IndexFlat(dim, metric)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        index.cp.seed = 0
        index.cp.min_points_per_centroid = 1  # (quiet: few centroids per list is fine here)
        index.train(centroids)
        index.add(centroids)
        index.nprobe = max(1, nlist // 8)
    else:
        index = faiss.IndexFlat(dim, metric)
        index.add(centroids)
    codes = np.empty(len(x), dtype=np.int64)
    step = 1 << 16
    for s in range(0, len(x), step):
        codes[s: s + step] = index.search(np.ascontiguousarray(x[s: s + step], dtype=np.float32), 1)[1][:, 0]
    if len(x) and codes.min() < 0:  # an empty probe list: fall back to the exhaustive scan
        bad = np.nonzero(codes < 0)[0]
        flat = faiss.IndexFlat(dim, metric)
        flat.add(centroids)
        codes[bad] = flat.search(np.ascontiguousarray(x[bad], dtype=np.float32), 1)[1][:, 0]
    return codes


def compress(x: np.ndarray, centroids: np.ndarray, cutoffs: np.ndarray, nbits: int, normalized: bool):
    """(n, dim) vectors -> codes (n,) int64, packed residuals (n, dim * nbits / 8) uint8, and the sum
    of squared residual norms; residuals are bucketed by ``cutoffs`` (2^nbits - 1 values)."""
    codes = assign_centroids(x, centroids, normalized)
    width = x.shape[1] * nbits // 8
    packed = np.empty((len(x), width), dtype=np.uint8)
    sse = 0.0
    step = 1 << 15
    for s in range(0, len(x), step):
        r = np.asarray(x[s: s + step], dtype=np.float32) - centroids[codes[s: s + step]]
        sse += float(np.einsum("ij,ij->", r, r))
        packed[s: s + step] = pack_codes(torch.bucketize(torch.from_numpy(r), torch.from_numpy(cutoffs), right=True)
                                    .to(torch.uint8).numpy(), nbits)
    return codes, packed, sse


def pack_codes(codes: np.ndarray, nbits: int) -> np.ndarray:
    """(n, dim) bucket indices < 2^nbits -> (n, dim * nbits / 8) uint8, first value in the high bits."""
    per = 8 // nbits
    c = codes.reshape(len(codes), -1, per).astype(np.uint8)
    out = np.zeros(c.shape[:2], dtype=np.uint8)
    for j in range(per):
        out |= c[:, :, j] << np.uint8(nbits * (per - 1 - j))
    return out


def byte_lookup_table(weights: np.ndarray, nbits: int) -> np.ndarray:
    """(256, 8 / nbits) float32: the bucket weights of the values packed in each byte."""
    per = 8 // nbits
    b = np.arange(256, dtype=np.uint16)
    idx = np.stack([(b >> (nbits * (per - 1 - j))) & ((1 << nbits) - 1) for j in range(per)], axis=1)
    return weights[idx].astype(np.float32)
