"""PLAID residual compression (ColBERTv2): nearest-centroid codes, bucketed residuals packed nbits
per value, and ``ResidualCodec``, the trained centroids and buckets that save and load themselves.

Files (shared by all segments of an index): ``shared-<tag>-centroids.npy`` (K x dim float16) and
``shared-<tag>-buckets.npy`` (the 2^nbits - 1 cutoffs then the 2^nbits weights, float32); the
manifest's ``state`` records the training (``n_centroids``, ``normalized``, ``n_tokens_at_training``,
``train_mse``) and the drift since (``added_tokens``, ``added_sse``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np

from maxsim.errors import CorruptedError
from maxsim.index.storage import FileWriter, load_array, new_tag

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
        """k-means on a seeded sample of ``x`` (n, dim) of at most n_centroids * max_points_per_centroid
        rows (``params``: an index's nbits, n_centroids, kmeans_niters, max_points_per_centroid, seed),
        for an index of ``n_tokens`` tokens. Bucket cutoffs: the residual-value quantiles (of at most
        MAX_QUANTILE_VALUES values: every j-th row of the sample); weight of a bucket: the mean of the
        residual values falling in it (the MSE-optimal reconstruction for these cutoffs; ColBERTv2
        uses the bucket's middle quantile)."""
        n_c = int(params["n_centroids"]) if params["n_centroids"] else auto_n_centroids(n_tokens)
        limit = max(1, n_c * int(params["max_points_per_centroid"]))
        if len(x) > limit:
            x = x[np.sort(np.random.default_rng(params["seed"]).choice(len(x), limit, replace=False))]
        sample = np.ascontiguousarray(x, dtype=np.float32) if len(x) else np.zeros((1, x.shape[1]), np.float32)
        centroids = kmeans(sample, max(1, min(n_c, len(sample))), int(params["kmeans_niters"]), int(params["seed"]),
                           normalized)
        # residual statistics from at most MAX_QUANTILE_VALUES values (whole rows of the sample)
        rows = sample[:: -(-len(sample) * sample.shape[1] // MAX_QUANTILE_VALUES)]
        r = rows - centroids[assign_centroids(rows, centroids, normalized)]
        n_b = 1 << int(params["nbits"])
        flat = r.ravel()
        levels = np.quantile(flat, np.arange(1, 2 * n_b) / (2 * n_b))  # odd: the buckets' middles
        cutoffs, mid = levels[1::2].astype(np.float32), levels[0::2]
        which = bucket_indices(flat, cutoffs)
        sums, counts = np.bincount(which, flat, n_b), np.bincount(which, minlength=n_b)
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
        """The codec of a committed ``body`` (None before the first add); raises CorruptedError
        naming a bad file."""
        shared = body.get("shared_files") or {}
        if not shared:
            return None
        centroids = np.asarray(load_array(folder, shared["centroids"], mmap=False), dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != body["dim"] or not np.isfinite(centroids).all():
            raise CorruptedError(f"{folder / shared['centroids']}: bad centroid array {centroids.shape}.")
        buckets = np.asarray(load_array(folder, shared["buckets"], mmap=False), dtype=np.float32)
        nbits, state = body["params"]["nbits"], body["state"]
        n_b = 1 << nbits
        if buckets.shape != (2 * n_b - 1,) or not np.isfinite(buckets).all():
            raise CorruptedError(f"{folder / shared['buckets']}: bad bucket array {buckets.shape}.")
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
        sum of squared residual norms. A second thread buckets and packs each chunk while faiss
        assigns the next (faiss leaves part of the second core idle)."""
        index = centroid_index(self.centroids, self.normalized, len(x))
        codes = np.empty(len(x), dtype=np.int64)
        packed = np.empty((len(x), x.shape[1] * self.nbits // 8), dtype=np.uint8)
        step, jobs = 1 << 15, []
        with ThreadPoolExecutor(1, thread_name_prefix="maxsim-pack") as pool:
            for s in range(0, len(x), step):
                chunk = np.ascontiguousarray(x[s: s + step], dtype=np.float32)
                codes[s: s + step] = index.search(chunk, 1)[1][:, 0]
                jobs.append(pool.submit(self._pack, chunk, codes[s: s + step], packed[s: s + step]))
            sse = sum(job.result() for job in jobs)
        return codes, packed, sse

    def _pack(self, x: np.ndarray, codes: np.ndarray, out: np.ndarray) -> float:
        """Bucket and pack the residuals of ``x`` against centroids ``codes`` into ``out``; their squared norm."""
        r = x - self.centroids[codes]
        out[:] = pack_codes(bucket_indices(r, self.cutoffs), self.nbits)
        return float(np.einsum("ij,ij->", r, r))

    def decompress(self, codes: np.ndarray, residuals: np.ndarray) -> np.ndarray:
        """codes (n,) int64 and packed residuals (n, dim * nbits / 8) -> (n, dim) float32 vectors
        (centroid + bucket weights, renormalized when the data is unit-norm)."""
        v = self.centroids[codes]
        v += self.lut[residuals].reshape(len(codes), self.centroids.shape[1])
        if self.normalized:
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            np.divide(v, np.maximum(norms, 1e-12), out=v)
        return v


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
    """(n_c, dim) float32 centroids (float16 values) of faiss k-means on ``sample`` (n, dim) float32
    (spherical for unit-norm data); from FAST_ASSIGN_FROM centroids on, each iteration assigns
    through ``_assignment_index``."""
    cp = faiss.ClusteringParameters()
    cp.niter, cp.seed, cp.spherical = niter, seed, normalized
    cp.min_points_per_centroid, cp.max_points_per_centroid = 1, max(1, -(-len(sample) // n_c))
    clustering = faiss.Clustering(sample.shape[1], n_c, cp)
    train = sample if n_c >= FAST_ASSIGN_FROM else None
    clustering.train(sample, _assignment_index(sample.shape[1], normalized, train))
    centroids = faiss.vector_to_array(clustering.centroids).reshape(n_c, sample.shape[1])
    return centroids.astype(np.float16).astype(np.float32)


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


def bucket_indices(r: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """uint8 array shaped like ``r``: how many of the sorted ``cutoffs`` each value reaches (>=)."""
    out = np.zeros(r.shape, dtype=np.uint8)
    for c in cutoffs:
        out += r >= c
    return out


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
