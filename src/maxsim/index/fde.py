"""Fixed dimensional encodings (FDEs) of token-vector sets, after MUVERA (Dhulipala et al., 2024).

A set of token vectors becomes one vector whose inner product with another set's encoding
approximates their Chamfer similarity (MaxSim: the sum over query vectors of the best document
vector's inner product), so that a single-vector index can propose candidates:

- SimHash partitions: ``k_sim`` Gaussian directions g_1..g_k per repetition; a vector x falls in
  partition sum_i [<g_i, x> > 0] * 2^i, one of B = 2^k_sim;
- per partition the vectors falling there are summed (queries) or averaged (documents); a document
  partition that none of its vectors falls into takes the vector whose partition is nearest in
  Hamming distance (the first such vector in the document's order); query partitions stay 0;
- each partition's vector is projected by psi(x) = S x / sqrt(d_proj), S a random +-1
  (d_proj, dim) matrix (``d_proj`` None: no projection), the B blocks concatenated;
- ``repetitions`` independent draws, concatenated: B * d_proj * repetitions dimensions;
- optionally a final projection psi'(F) = S' F / sqrt(final_dim), S' random +-1.

psi is linear, so tokens are projected first and then summed/averaged (the same result, fewer
flops). All vectors are float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch

CHUNK_ELEMENTS = 1 << 24  # per encoding chunk: output floats and Hamming-distance bytes each stay below this


class FDEncoder:
    """The random draws of one encoding and the encoding itself. ``simhash``: (R, dim, k_sim)
    float32 Gaussian; ``inner``: (R, dim, d_proj) +-1 int8 or None; ``final``: (width, final_dim)
    +-1 int8 or None (width = 2^k_sim * d_proj * R)."""

    def __init__(self, simhash: np.ndarray, inner: np.ndarray | None, final: np.ndarray | None):
        self.simhash, self.inner, self.final = simhash, inner, final
        self.repetitions, self.dim, self.k_sim = simhash.shape
        self.block = self.dim if inner is None else inner.shape[2]  # d_proj
        self.width = (1 << self.k_sim) * self.block * self.repetitions
        self.out_dim = self.width if final is None else final.shape[1]
        self._g = torch.from_numpy(np.ascontiguousarray(simhash.transpose(1, 0, 2).reshape(self.dim, -1)))
        self._s = None if inner is None else torch.from_numpy(
            inner.transpose(1, 0, 2).reshape(self.dim, -1).astype(np.float32) / math.sqrt(self.block))
        self._f = None if final is None else torch.from_numpy(final.astype(np.float32) / math.sqrt(final.shape[1]))
        bits = np.arange(1 << self.k_sim)
        self._hamming = torch.from_numpy(np.array([[bin(a ^ b).count("1") for b in bits] for a in bits], np.int8))

    @classmethod
    def draw(cls, dim: int, k_sim: int, d_proj: int | None, repetitions: int, final_dim: int | None,
             seed: int) -> FDEncoder:
        """Fresh random draws for ``dim``-dimensional tokens (deterministic for ``seed``)."""
        rng = np.random.default_rng(seed)
        simhash = rng.standard_normal((repetitions, dim, k_sim), dtype=np.float32)
        inner = None if d_proj is None else _signs(rng, (repetitions, dim, d_proj))
        width = (1 << k_sim) * (d_proj or dim) * repetitions
        return cls(simhash, inner, None if final_dim is None else _signs(rng, (width, final_dim)))

    def encode(self, sets: list[np.ndarray], document: bool) -> np.ndarray:
        """FDEs of token sets (each (n_tokens, dim)) -> (len(sets), out_dim) float32: documents
        (averaged partitions, empty ones filled) or queries (summed). An empty set encodes to 0."""
        out = np.zeros((len(sets), self.out_dim), dtype=np.float32)
        longest = max((len(s) for s in sets), default=0)
        per_set = max(self.width, longest * self.repetitions << self.k_sim)
        step = max(1, CHUNK_ELEMENTS // per_set)
        with torch.inference_mode():
            for a in range(0, len(sets), step):
                out[a: a + step] = self._encode_chunk(sets[a: a + step], document).numpy()
        return out

    def _encode_chunk(self, sets: list[np.ndarray], document: bool) -> torch.Tensor:
        lens = torch.tensor([len(s) for s in sets])
        x = torch.from_numpy(np.concatenate([np.asarray(s, np.float32).reshape(-1, self.dim) for s in sets]))
        parts, proj = self._partitions(x), self._project(x)  # (T, R), (T, R, block)
        n, r, b = len(sets), self.repetitions, 1 << self.k_sim
        owner = torch.repeat_interleave(torch.arange(n), lens)
        slot = ((owner[:, None] * r + torch.arange(r)) * b + parts).reshape(-1)
        sums = torch.zeros(n * r * b, self.block).index_add_(0, slot, proj.reshape(-1, self.block))
        if document:
            counts = torch.bincount(slot, minlength=n * r * b)
            sums /= counts.clamp(min=1)[:, None]
            empty = (counts == 0).view(n, r, b) & (lens > 0)[:, None, None]
            if empty.any():
                sums.view(n, r, b, -1)[empty] = self._nearest(parts, proj, lens)[empty]
        fde = sums.view(n, self.width)
        return fde if self._f is None else fde @ self._f

    def _partitions(self, x: torch.Tensor) -> torch.Tensor:
        """SimHash partition of each token in each repetition: (T, R) int64."""
        bits = (x @ self._g > 0).view(len(x), self.repetitions, self.k_sim).long()
        return (bits << torch.arange(self.k_sim)).sum(-1)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Inner projection of each token in each repetition: (T, R, block)."""
        if self._s is None:
            return x[:, None, :].expand(len(x), self.repetitions, self.dim)
        return (x @ self._s).view(len(x), self.repetitions, self.block)

    def _nearest(self, parts: torch.Tensor, proj: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """For each set, repetition and partition, the projected token whose partition is nearest
        in Hamming distance (first in the set's order on ties): (n, R, B, block)."""
        starts = torch.cumsum(lens, 0) - lens
        pos = torch.arange(int(lens.max()))
        tokens = (starts[:, None] + pos).clamp(max=max(len(parts) - 1, 0))  # (n, Lmax)
        dist = self._hamming[parts[tokens]]  # (n, Lmax, R, B)
        dist[pos[None, :] >= lens[:, None]] = self.k_sim + 1  # padding: farther than any token
        best = torch.gather(tokens, 1, dist.argmin(1).flatten(1)).view(len(lens), self.repetitions, -1)
        return proj[best, torch.arange(self.repetitions)[None, :, None]]


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.integers(0, 2, shape, dtype=np.int8) * 2 - 1).astype(np.int8)
