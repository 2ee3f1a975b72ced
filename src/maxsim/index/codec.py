"""The PLAID codec: each token as its nearest centroid's id plus its residual coded one byte per
group of dimensions (``maxsim.index.residual``). ``ResidualCodec`` trains, compresses,
decompresses, and saves and loads itself.

Files (shared by all segments of an index): ``shared-<tag>-centroids.npy`` (K x dim int8) with
``shared-<tag>-scales.npy`` (K float32: centroid = int8 row x scale; format 1: K x dim float16) and
``shared-<tag>-codebook.npy`` (product quantizer: n_groups x 256 x group float32) or
``shared-<tag>-levels.npy`` (ternary: per dimension the 2 cutoffs then the 3 levels, float32);
format-1 indexes hold ``shared-<tag>-buckets.npy`` instead (one set of buckets for every
dimension). The manifest's ``state`` records the training (``n_centroids``, ``normalized``,
``n_tokens_at_training``, ``train_mse``, ``shared_codec``) and the drift since (``added_tokens``,
``added_sse``). A codec also saves itself to one ``.npz`` file (``save_file`` / ``load_file``) to be
handed to other indexes (shards sharing one codec).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from maxsim.errors import CorruptedError, InvalidInputError
from maxsim.index.centroids import assign_centroids, auto_n_centroids, centroid_index, int8_rows, kmeans
from maxsim.index.residual import (
    GroupQuantizer,
    ScalarQuantizer,
    group_dims,
    n_groups,
    quantizer_from_arrays,
    train_quantizer,
)
from maxsim.index.storage import FileWriter, load_array, new_tag

QUANTIZER_FILES = ("codebook", "levels")
RESIDUAL_ROWS = 1 << 18  # sample rows whose residuals train the quantizer


class ResidualCodec:
    """``centroids`` (K, dim) float32 (int8 x scale values), the residual ``quantizer``, ``nbits`` (1, 2,
    4 or "ternary"); ``normalized``: the data is unit-norm (inner-product assignment);
    ``train_mse`` / ``n_tokens``: mean squared residual norm per token of the training sample (the
    drift reference), and the index size it was trained for."""

    def __init__(self, centroids: np.ndarray, quantizer: GroupQuantizer, nbits, normalized: bool,
                 train_mse: float = float("nan"), n_tokens: int = 0):
        self.centroids, self.quantizer, self.nbits = centroids, quantizer, nbits
        self.normalized, self.train_mse, self.n_tokens = bool(normalized), float(train_mse), int(n_tokens)

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    @classmethod
    def train(cls, x: np.ndarray, n_tokens: int, params, normalized: bool) -> ResidualCodec:
        """k-means on a seeded sample of ``x`` (n, dim) of at most n_centroids * max_points_per_centroid
        rows (``params``: a ``PlaidParams``), for an index of ``n_tokens`` tokens; the quantizer is
        trained on the residuals of at most RESIDUAL_ROWS rows of that sample."""
        n_c = int(params.n_centroids) if params.n_centroids else auto_n_centroids(n_tokens)
        limit = max(1, n_c * int(params.max_points_per_centroid))
        if len(x) > limit:
            x = x[np.sort(np.random.default_rng(params.seed).choice(len(x), limit, replace=False))]
        sample = np.ascontiguousarray(x, dtype=np.float32) if len(x) else np.zeros((1, x.shape[1]), np.float32)
        centroids = kmeans(sample, max(1, min(n_c, len(sample))), int(params.kmeans_niters), int(params.seed),
                           normalized)
        rows = sample[:: -(-len(sample) // RESIDUAL_ROWS)]
        r = rows - centroids[assign_centroids(rows, centroids, normalized)]
        quantizer = train_quantizer(r, params.nbits, params.seed)
        mse = float(np.einsum("ij,ij->", r, r)) / max(len(r), 1)
        return cls(centroids, quantizer, params.nbits, normalized, mse, n_tokens)

    # ------------------------------------------------------------------ persistence
    def save(self, writer: FileWriter, body: dict, shared: bool = False) -> None:
        """Write the centroids and quantizer as new shared files of ``body`` and reset its training
        state (``shared``: adopted from elsewhere, never retrained)."""
        if self.dim != body["dim"] or self.nbits != body["params"]["nbits"]:
            raise InvalidInputError(f"the codec has dim {self.dim} and nbits {self.nbits!r}; the index has dim "
                                    f"{body['dim']} and nbits {body['params']['nbits']!r}.")
        tag = new_tag()
        q, scales = int8_rows(self.centroids)
        self.centroids = q * scales[:, None]  # exactly what is stored (trained centroids already are)
        body["shared_files"] = {"centroids": writer.array(f"shared-{tag}-centroids.npy", q),
                                "scales": writer.array(f"shared-{tag}-scales.npy", scales)}
        for name, array in self.quantizer.arrays().items():
            body["shared_files"][name] = writer.array(f"shared-{tag}-{name}.npy", array)
        body["state"] = {"n_centroids": int(len(self.centroids)), "normalized": self.normalized,
                         "n_tokens_at_training": self.n_tokens, "train_mse": self.train_mse,
                         "added_tokens": 0, "added_sse": 0.0, "shared_codec": bool(shared)}

    @classmethod
    def load(cls, folder: Path, body: dict) -> ResidualCodec | None:
        """The codec of a committed ``body`` (None before the first add); raises CorruptedError
        naming a bad file."""
        shared = body.get("shared_files") or {}
        if not shared:
            return None
        dim, nbits, state = body["dim"], body["params"]["nbits"], body["state"]
        centroids = np.asarray(load_array(folder, shared["centroids"], mmap=False), dtype=np.float32)
        if "scales" in shared:  # int8 rows x scales (format 1: float16 values)
            scales = np.asarray(load_array(folder, shared["scales"], mmap=False), dtype=np.float32)
            if scales.shape != (len(centroids),):
                raise CorruptedError(f"{folder / shared['scales']}: {scales.shape} scales for "
                                     f"{len(centroids)} centroids; rebuild the index.")
            centroids *= scales[:, None]
        if centroids.shape != (state["n_centroids"], dim) or not np.isfinite(centroids).all():
            raise CorruptedError(f"{folder / shared['centroids']}: bad centroid array {centroids.shape}.")
        arrays = {name: np.asarray(load_array(folder, shared[name], mmap=False), dtype=np.float32)
                  for name in (*QUANTIZER_FILES, "buckets") if name in shared}
        name, array = next(iter(arrays.items()))
        if not np.isfinite(array).all() or array.shape != _expected_shape(name, dim, nbits):
            raise CorruptedError(f"{folder / shared[name]}: bad {name} array {array.shape}.")
        quantizer = ScalarQuantizer.from_shared_buckets(dim, array, nbits) if name == "buckets" \
            else quantizer_from_arrays(dim, arrays, nbits)
        return cls(centroids, quantizer, nbits, state["normalized"], state.get("train_mse", float("nan")),
                   state.get("n_tokens_at_training", 0))

    def save_file(self, path) -> None:
        """Write the codec to one ``.npz`` file (``load_file`` reads it back)."""
        meta = np.array([str(self.nbits), str(int(self.normalized)), repr(self.train_mse), str(self.n_tokens)])
        with open(path, "wb") as f:
            np.savez(f, centroids=self.centroids, meta=meta, **self.quantizer.arrays())

    @classmethod
    def load_file(cls, path) -> ResidualCodec:
        """The codec ``save_file`` wrote (CorruptedError naming the file when it is not one)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                nbits, normalized, mse, n_tokens = (str(v) for v in z["meta"])
                nbits = int(nbits) if nbits.isdigit() else nbits
                centroids = z["centroids"].astype(np.float32)
                arrays = {name: z[name] for name in QUANTIZER_FILES if name in z.files}
        except (OSError, KeyError, ValueError) as exc:
            raise CorruptedError(f"{path}: not a saved codec ({exc}).") from None
        quantizer = quantizer_from_arrays(centroids.shape[1], arrays, nbits)
        return cls(centroids, quantizer, nbits, normalized == "1", float(mse), int(n_tokens))

    # ------------------------------------------------------------------ coding
    @property
    def width(self) -> int:
        """Bytes of residual codes per token."""
        return n_groups(self.dim, self.nbits)

    def compress(self, x: np.ndarray):
        """(n, dim) vectors -> centroid ids (n,) int64, residual codes (n, width) uint8 and the sum
        of squared residual norms. A second thread codes each chunk's residuals while faiss assigns
        the next one's centroids."""
        index = centroid_index(self.centroids, self.normalized, x)
        codes = np.empty(len(x), dtype=np.int64)
        packed = np.empty((len(x), self.width), dtype=np.uint8)
        step, jobs = 1 << 15, []
        with ThreadPoolExecutor(1, thread_name_prefix="maxsim-pack") as pool:
            for s in range(0, len(x), step):
                chunk = np.ascontiguousarray(x[s: s + step], dtype=np.float32)
                codes[s: s + step] = index.search(chunk, 1)[1][:, 0]
                jobs.append(pool.submit(self._code, chunk, codes[s: s + step], packed[s: s + step]))
            sse = sum(job.result() for job in jobs)
        return codes, packed, sse

    def _code(self, x: np.ndarray, codes: np.ndarray, out: np.ndarray) -> float:
        """Residual codes of ``x`` against centroids ``codes`` into ``out``; their squared norm."""
        r = x - self.centroids[codes]
        out[:] = self.quantizer.encode(r)
        return float(np.einsum("ij,ij->", r, r))

    def decompress(self, codes: np.ndarray, residuals: np.ndarray) -> np.ndarray:
        """Centroid ids (n,) and residual codes (n, width) -> (n, dim) float32 vectors: centroid +
        decoded residual (what the search scores, ``maxsim.index.lut``)."""
        return self.centroids[np.asarray(codes, dtype=np.intp)] + self.quantizer.decode(residuals)


def _expected_shape(name: str, dim: int, nbits) -> tuple:
    if name == "buckets":
        return (2 * (1 << int(nbits)) - 1,)
    if name == "levels":
        return (dim, 5)
    return (n_groups(dim, nbits), 256, group_dims(nbits))


__all__ = ["ResidualCodec", "auto_n_centroids"]
