"""PLAID residual compression (ColBERTv2): nearest-centroid codes, bucketed residuals packed nbits
per value, and ``ResidualCodec``, the trained centroids and buckets that save and load themselves.

Files (shared by all segments of an index): ``shared-<tag>-centroids.npy`` (K x dim float16) and
``shared-<tag>-buckets.npy`` (the 2^nbits - 1 cutoffs then the 2^nbits weights, float32); the
manifest's ``state`` records the training (``n_centroids``, ``normalized``, ``n_tokens_at_training``,
``train_mse``) and the drift since (``added_tokens``, ``added_sse``).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np
import torch

from maxsim.index.storage import FileWriter, IndexCorruptedError, load_array, new_tag

MAX_AUTO_CENTROIDS = 1 << 13
MAX_QUANTILE_VALUES = 1 << 22  # residual values the bucket cutoffs are computed from


def auto_n_centroids(n_tokens: int) -> int:
    """2^floor(log2(8 sqrt(T))) for T token vectors, at most 8,192 (bounds CPU build time) and at
    most 2^floor(log2(T / 8)) (at least 8 vectors per centroid), at least 1."""
    by_sqrt = min(MAX_AUTO_CENTROIDS, 1 << int(math.floor(math.log2(max(8.0 * math.sqrt(max(n_tokens, 1)), 1.0)))))
    by_size = 1 << int(math.floor(math.log2(max(n_tokens / 8.0, 1.0))))
    return max(1, min(by_sqrt, by_size))


def unit_norm(x: np.ndarray) -> bool:
    """Whether the rows of ``x`` (checked on the first 65,536) have norm 1 (to 1e-2)."""
    return bool(len(x) == 0 or np.abs(np.linalg.norm(x[: 1 << 16], axis=1) - 1).max() < 1e-2)


class ResidualCodec:
    """Centroids (K, dim) float32 (float16 values), bucket ``cutoffs`` (2^nbits - 1,) and ``weights``
    (2^nbits,) float32; ``normalized``: the data is unit-norm (inner-product assignment, decompressed
    vectors renormalized); ``train_mse`` / ``n_tokens``: mean squared residual norm per token of the
    training sample, and the index size it was trained for."""

    def __init__(self, centroids: np.ndarray, cutoffs: np.ndarray, weights: np.ndarray, nbits: int,
                 normalized: bool, train_mse: float = float("nan"), n_tokens: int = 0):
        self.centroids, self.cutoffs, self.weights, self.nbits = centroids, cutoffs, weights, int(nbits)
        self.normalized, self.train_mse, self.n_tokens = bool(normalized), float(train_mse), int(n_tokens)
        self.lut = byte_lookup_table(weights, self.nbits)

    @classmethod
    def train(cls, x: np.ndarray, n_tokens: int, params: dict, normalized: bool) -> ResidualCodec:
        """k-means (faiss) on a seeded sample of ``x`` (n, dim) of at most n_centroids *
        max_points_per_centroid rows (``params``: an index's nbits, n_centroids, kmeans_niters,
        max_points_per_centroid, seed), for an index of ``n_tokens`` tokens. Bucket cutoffs: the
        residual-value quantiles; weight of a bucket: the mean of the residual values falling in it
        (the MSE-optimal reconstruction for these cutoffs; ColBERTv2 uses the bucket's middle quantile)."""
        n_c = int(params["n_centroids"]) if params["n_centroids"] else auto_n_centroids(n_tokens)
        limit = max(1, n_c * int(params["max_points_per_centroid"]))
        if len(x) > limit:
            x = x[np.sort(np.random.default_rng(params["seed"]).choice(len(x), limit, replace=False))]
        sample = np.ascontiguousarray(x, dtype=np.float32) if len(x) else np.zeros((1, x.shape[1]), np.float32)
        n_c = max(1, min(n_c, len(sample)))
        km = faiss.Kmeans(sample.shape[1], n_c, niter=int(params["kmeans_niters"]), seed=int(params["seed"]),
                          spherical=normalized, max_points_per_centroid=int(params["max_points_per_centroid"]),
                          min_points_per_centroid=1, verbose=False)
        km.train(sample)
        centroids = km.centroids.astype(np.float16).astype(np.float32)
        r = sample - centroids[assign_centroids(sample, centroids, normalized)]
        n_b = 1 << int(params["nbits"])
        flat = r.ravel()
        if len(flat) > MAX_QUANTILE_VALUES:
            flat = flat[np.random.default_rng(params["seed"]).choice(len(flat), MAX_QUANTILE_VALUES, replace=False)]
        cutoffs = np.quantile(flat, np.arange(1, n_b) / n_b).astype(np.float32)
        which = np.searchsorted(cutoffs, flat, side="right")
        sums, counts = np.bincount(which, flat, n_b), np.bincount(which, minlength=n_b)
        mid = np.quantile(flat, (np.arange(n_b) + 0.5) / n_b)
        weights = np.where(counts > 0, sums / np.maximum(counts, 1), mid).astype(np.float32)
        mse = float(np.einsum("ij,ij->", r, r)) / max(len(r), 1)
        return cls(centroids, cutoffs, weights, params["nbits"], normalized, mse, n_tokens)

    # ------------------------------------------------------------------ persistence
    def save(self, writer: FileWriter, body: dict) -> None:
        """Write the centroids and buckets as new shared files of ``body`` and reset its training state."""
        tag = new_tag()
        body["shared_files"] = {
            "centroids": writer.array(f"shared-{tag}-centroids.npy", self.centroids.astype(np.float16)),
            "buckets": writer.array(f"shared-{tag}-buckets.npy", np.concatenate([self.cutoffs, self.weights])),
        }
        body["state"] = {"n_centroids": int(len(self.centroids)), "normalized": self.normalized,
                         "n_tokens_at_training": self.n_tokens, "train_mse": self.train_mse,
                         "added_tokens": 0, "added_sse": 0.0}

    @classmethod
    def load(cls, folder: Path, body: dict) -> ResidualCodec | None:
        """The codec of a committed ``body`` (None before the first add); raises IndexCorruptedError
        naming a bad file."""
        shared = body.get("shared_files") or {}
        if not shared:
            return None
        centroids = np.asarray(load_array(folder, shared["centroids"], mmap=False), dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != body["dim"] or not np.isfinite(centroids).all():
            raise IndexCorruptedError(f"{folder / shared['centroids']}: bad centroid array {centroids.shape}.")
        buckets = np.asarray(load_array(folder, shared["buckets"], mmap=False), dtype=np.float32)
        nbits, state = body["params"]["nbits"], body["state"]
        n_b = 1 << nbits
        if buckets.shape != (2 * n_b - 1,) or not np.isfinite(buckets).all():
            raise IndexCorruptedError(f"{folder / shared['buckets']}: bad bucket array {buckets.shape}.")
        return cls(centroids, buckets[: n_b - 1], buckets[n_b - 1:], nbits, state["normalized"],
                   state.get("train_mse", float("nan")), state.get("n_tokens_at_training", 0))

    def arrays(self) -> dict[str, np.ndarray]:
        """The codec as arrays to ``np.savez`` (``from_file`` reads them back)."""
        return {"centroids": self.centroids, "cutoffs": self.cutoffs, "weights": self.weights,
                "train_mse": np.float64(self.train_mse), "normalized": np.bool_(self.normalized),
                "n_tokens": np.int64(self.n_tokens)}

    @classmethod
    def from_file(cls, path, nbits: int) -> ResidualCodec:
        """The codec saved by ``np.savez(path, **codec.arrays())``."""
        z = np.load(path)
        return cls(z["centroids"].astype(np.float32), z["cutoffs"], z["weights"], nbits, bool(z["normalized"]),
                   float(z["train_mse"]), int(z["n_tokens"]))

    # ------------------------------------------------------------------ coding
    def compress(self, x: np.ndarray):
        """(n, dim) vectors -> codes (n,) int64, packed residuals (n, dim * nbits / 8) uint8 and the
        sum of squared residual norms."""
        codes = assign_centroids(x, self.centroids, self.normalized)
        packed = np.empty((len(x), x.shape[1] * self.nbits // 8), dtype=np.uint8)
        sse = 0.0
        step = 1 << 15
        for s in range(0, len(x), step):
            r = np.asarray(x[s: s + step], dtype=np.float32) - self.centroids[codes[s: s + step]]
            sse += float(np.einsum("ij,ij->", r, r))
            buckets = torch.bucketize(torch.from_numpy(r), torch.from_numpy(self.cutoffs), right=True)
            packed[s: s + step] = pack_codes(buckets.to(torch.uint8).numpy(), self.nbits)
        return codes, packed, sse

    def decompress(self, codes: np.ndarray, residuals: np.ndarray) -> np.ndarray:
        """codes (n,) int64 and packed residuals (n, dim * nbits / 8) -> (n, dim) float32 vectors
        (centroid + bucket weights, renormalized when the data is unit-norm)."""
        v = self.centroids[codes]
        v += self.lut[residuals].reshape(len(codes), self.centroids.shape[1])
        if self.normalized:
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            np.divide(v, np.maximum(norms, 1e-12), out=v)
        return v


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
