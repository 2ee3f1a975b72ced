"""Residual quantizers of the PLAID codec: one byte per group of consecutive dimensions.

A token's residual (its vector minus its centroid) is cut into ``n_groups`` groups of ``group``
consecutive dimensions (the last one shorter when ``group`` does not divide ``dim``); each group is
coded in one byte, which stands for one of 256 short vectors of that group: the ``codebook``
(n_groups, 256, group) float32, zero beyond ``dim``. Decoding gathers codebook rows; scoring a
query against the codes reads per-query tables ``codebook @ q_group`` instead
(``maxsim.index.lut``), so every quantizer below is scored by the same code.

- ``ProductQuantizer`` (``nbits`` 1, 2, 4: 8, 4, 2 dimensions per byte): 256 codewords per group
  trained by k-means on the groups of residuals (product quantization). At 2 bits its
  reconstruction error is 0.53-0.66x that of one bucket set shared by all dimensions (ColBERTv2's)
  and 0.75-0.81x that of buckets fitted per dimension (``bench/codec.py``).
- ``ScalarQuantizer``: each dimension on its own levels, the values of a group packed base
  ``L`` (first dimension most significant). ``ternary`` (1.58 bits): three levels per dimension
  (-w, ~0, +w, fitted per dimension by Lloyd's algorithm), five dimensions per byte (3^5 = 243
  codes). Also the reader of format-1 indexes (one set of 2^nbits buckets for all dimensions, bit
  packed).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

TERNARY = "ternary"
PQ_TRAIN_ROWS = 1 << 16  # residuals the codebooks are trained on
PQ_ITERATIONS = 12


def padded(x: np.ndarray, width: int) -> np.ndarray:
    """(n, dim) -> (n, width) float32, contiguous, zeros past ``dim`` (width >= dim)."""
    if x.shape[1] == width:
        return np.ascontiguousarray(x, dtype=np.float32)
    out = np.zeros((len(x), width), dtype=np.float32)
    out[:, : x.shape[1]] = x
    return out


def group_dims(nbits) -> int:
    """Dimensions per byte of a codec: 8 / nbits, or 5 for ternary."""
    return 5 if nbits == TERNARY else 8 // int(nbits)


def n_groups(dim: int, nbits) -> int:
    """Bytes per token of the residual codes."""
    return math.ceil(dim / group_dims(nbits))


class GroupQuantizer:
    """Common part: ``codebook`` (n_groups, 256, group) float32 and the decoding it defines."""

    kind = ""

    def __init__(self, dim: int, codebook: np.ndarray):
        self.dim, self.codebook = int(dim), np.ascontiguousarray(codebook, dtype=np.float32)
        self.n_groups, self.group = self.codebook.shape[0], self.codebook.shape[2]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, n_groups) uint8 -> (n, dim) float32 residuals."""
        rows = self.codebook[np.arange(self.n_groups), np.asarray(codes, dtype=np.intp)]  # (n, groups, group)
        return rows.reshape(len(codes), self.n_groups * self.group)[:, : self.dim]

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError


class ProductQuantizer(GroupQuantizer):
    """256 k-means codewords per group of ``8 / nbits`` dimensions."""

    kind = "pq"

    @classmethod
    def train(cls, residuals: np.ndarray, nbits: int, seed: int = 0) -> ProductQuantizer:
        """Codebooks from (n, dim) float32 residuals (a seeded sample of PQ_TRAIN_ROWS; repeated
        when there are fewer than 256), zero-padded to whole groups (the last group's codewords are
        zero past ``dim``)."""
        dim, group = residuals.shape[1], group_dims(nbits)
        width = n_groups(dim, nbits) * group
        rng = np.random.default_rng(seed)
        sample = residuals[rng.choice(len(residuals), PQ_TRAIN_ROWS, replace=False)] \
            if len(residuals) > PQ_TRAIN_ROWS else residuals
        if len(sample) < 256 * 4:
            sample = np.tile(sample, (-(-256 * 4 // max(len(sample), 1)), 1))
        pq = faiss.ProductQuantizer(width, width // group, 8)
        pq.cp.niter, pq.cp.seed, pq.cp.min_points_per_centroid = PQ_ITERATIONS, seed, 1
        pq.train(padded(sample, width))
        return cls(dim, faiss.vector_to_array(pq.centroids).reshape(width // group, 256, group))

    def encode(self, r: np.ndarray) -> np.ndarray:
        """(n, dim) float32 -> (n, n_groups) uint8: the nearest codeword of each group."""
        width = self.n_groups * self.group
        pq = faiss.ProductQuantizer(width, self.n_groups, 8)  # (not kept: the codec stays picklable)
        faiss.copy_array_to_vector(self.codebook.ravel(), pq.centroids)
        return pq.compute_codes(padded(r, width))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"codebook": self.codebook}


class ScalarQuantizer(GroupQuantizer):
    """Per-dimension ``levels`` (dim, L) and ``cutoffs`` (dim, L - 1) (value v gets the number of
    cutoffs <= v), ``group`` values per byte packed base L, first dimension most significant."""

    kind = "scalar"

    def __init__(self, dim: int, cutoffs: np.ndarray, levels: np.ndarray, group: int):
        self.cutoffs = np.ascontiguousarray(cutoffs, dtype=np.float32)
        self.levels = np.ascontiguousarray(levels, dtype=np.float32)
        n_levels = self.levels.shape[1]
        groups = math.ceil(dim / group)
        digits = _digits(n_levels, group)  # (256, group): the level of each dimension in a byte value
        by_dim = np.zeros((groups * group, n_levels), dtype=np.float32)  # zero levels past dim
        by_dim[:dim] = self.levels
        per_group = by_dim.reshape(groups, group, n_levels)
        codebook = np.take_along_axis(per_group[:, None], digits[None, :, :, None], axis=3)[..., 0]
        codebook[:, n_levels ** group:] = 0.0  # byte values no code uses (ternary: 243..255)
        super().__init__(dim, codebook)
        self.weights = n_levels ** np.arange(group - 1, -1, -1)

    @classmethod
    def train(cls, residuals: np.ndarray, n_levels: int, group: int, iterations: int = 12) -> ScalarQuantizer:
        """``n_levels`` levels per dimension by Lloyd's algorithm (1-D k-means) from the quantiles,
        ``group`` dimensions per byte (n_levels ** group <= 256)."""
        sample = residuals[:: max(1, len(residuals) // PQ_TRAIN_ROWS)]
        cutoffs = np.quantile(sample, np.arange(1, n_levels) / n_levels, axis=0).T.astype(np.float32)
        levels = np.zeros((sample.shape[1], n_levels), dtype=np.float32)
        for _ in range(iterations):
            which = _bucket(sample, cutoffs)
            for j in range(n_levels):
                inside = which == j
                sums, counts = (sample * inside).sum(0), inside.sum(0)
                levels[:, j] = np.where(counts > 0, sums / np.maximum(counts, 1), levels[:, j])
            cutoffs = (levels[:, 1:] + levels[:, :-1]) / 2
        return cls(sample.shape[1], cutoffs, levels, group)

    @classmethod
    def from_shared_buckets(cls, dim: int, buckets: np.ndarray, nbits: int) -> ScalarQuantizer:
        """A format-1 codec: ``buckets`` = the 2^nbits - 1 cutoffs then the 2^nbits weights, for every dimension."""
        n = 1 << nbits
        return cls(dim, np.tile(buckets[: n - 1], (dim, 1)), np.tile(buckets[n - 1:], (dim, 1)), 8 // nbits)

    def encode(self, r: np.ndarray) -> np.ndarray:
        which = np.zeros((len(r), self.n_groups * self.group), dtype=np.int32)
        which[:, : self.dim] = _bucket(r, self.cutoffs)
        return (which.reshape(len(r), self.n_groups, self.group) @ self.weights).astype(np.uint8)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"levels": np.concatenate([self.cutoffs, self.levels], axis=1)}


def _bucket(r: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """(n, dim) int32: how many of each dimension's ``cutoffs`` (dim, L - 1) the value reaches."""
    out = np.zeros(r.shape, dtype=np.int32)
    for j in range(cutoffs.shape[1]):
        out += r >= cutoffs[:, j]
    return out


def _digits(base: int, width: int) -> np.ndarray:
    """(256, width) int: the base-``base`` digits of 0..255, most significant first."""
    return np.arange(256)[:, None] // base ** np.arange(width - 1, -1, -1)[None, :] % base


def quantizer_from_arrays(dim: int, arrays: dict[str, np.ndarray], nbits) -> GroupQuantizer:
    """The quantizer saved by ``arrays()`` (``codebook``: product; ``levels``: ternary)."""
    if "codebook" in arrays:
        return ProductQuantizer(dim, arrays["codebook"])
    levels = arrays["levels"]
    n_levels = (levels.shape[1] + 1) // 2
    return ScalarQuantizer(dim, levels[:, : n_levels - 1], levels[:, n_levels - 1:], group_dims(nbits))


def train_quantizer(residuals: np.ndarray, nbits, seed: int = 0) -> GroupQuantizer:
    """The quantizer of codec ``nbits`` (1, 2, 4 or "ternary") trained on (n, dim) residuals."""
    if nbits == TERNARY:
        return ScalarQuantizer.train(residuals, 3, group_dims(TERNARY))
    return ProductQuantizer.train(residuals, int(nbits), seed)
