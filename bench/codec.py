"""PLAID codec training and assignment: speed and quality of ``maxsim.index.codec`` vs the exhaustive scan.

    python bench/codec.py              # synthetic-10k (bench/index.py's subset); Cranfield too if cached

Side by side in one run, on the k-means sample maxsim trains on (n_centroids * 32 token vectors, 4
iterations, seed 0) and on 200,000 held-out token vectors:
- k-means: faiss's exhaustive ``faiss.Kmeans`` vs ``codec.kmeans`` (each
  iteration assigns through the product-quantized fast scan); quality = mean squared residual of the
  held-out vectors against their exhaustively found nearest centroid;
- assignment: the exhaustive scan (``faiss.IndexFlat``), an IVF over the centroids probing 1/8 of its
  lists and ``codec.assign_centroids`` (the fast scan + exact re-ranking of 2 proposals):
  microseconds per vector, share of vectors given the exhaustive scan's centroid, mean squared residual.
Prints a markdown table; the Cranfield rows need bench/_work/cranfield-default-model.npz
(written by ``bench/index.py --only cranfield``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from common import load_average, machine_line, markdown_table  # noqa: E402
from maxsim.index.codec import assign_centroids, auto_n_centroids, kmeans  # noqa: E402

CRANFIELD = ROOT / "bench" / "_work" / "cranfield-default-model.npz"


def ivf_eighth(x, centroids):
    """An IVF (sqrt K lists) over the centroids, 1/8 of the lists probed: the usual approximate assignment."""
    n_c, dim = centroids.shape
    nlist = 1 << int(round(math.log2(math.sqrt(n_c))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1
    index.train(centroids)
    index.add(centroids)
    index.nprobe = max(1, nlist // 8)
    return index.search(x, 1)[1][:, 0]


def exhaustive(x, centroids):
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    return index.search(x, 1)[1][:, 0]


def msr(x, centroids, codes):
    r = x - centroids[codes]
    return float(np.einsum("ij,ij->", r, r)) / len(x)


def rows_for(name, x):
    rng = np.random.default_rng(0)
    n_c = auto_n_centroids(len(x))
    sample = x[np.sort(rng.choice(len(x), min(len(x), n_c * 32), replace=False))]
    held = x[rng.choice(len(x), min(len(x), 200_000), replace=False)]
    out = []
    t = time.perf_counter()
    km = faiss.Kmeans(x.shape[1], n_c, niter=4, seed=0, spherical=True, max_points_per_centroid=32,
                      min_points_per_centroid=1)
    km.train(sample)
    t_flat = time.perf_counter() - t
    flat_c = km.centroids.astype(np.float16).astype(np.float32)
    t = time.perf_counter()
    ours_c = kmeans(sample, n_c, 4, 0, True)
    t_ours = time.perf_counter() - t
    base = msr(held, flat_c, exhaustive(held, flat_c))
    for label, c, secs in (("faiss.Kmeans, exhaustive", flat_c, t_flat), ("codec.kmeans", ours_c, t_ours)):
        m = msr(held, c, exhaustive(held, c))
        out.append([name, f"k-means {n_c} centroids: {label}", f"{secs:.2f} s", "", f"{m:.4f}", f"{m / base:.3f}"])
    truth = exhaustive(held, ours_c)
    base = msr(held, ours_c, truth)
    for label, fn in (("exhaustive scan", exhaustive), ("IVF, 1/8 of the lists", ivf_eighth),
                      ("codec.assign_centroids", lambda v, c: assign_centroids(v, c, True))):
        t = time.perf_counter()
        codes = fn(held, ours_c)
        us = (time.perf_counter() - t) / len(held) * 1e6
        out.append([name, f"assignment: {label}", f"{us:.2f} us/vector", f"{(codes == truth).mean():.4f}",
                    f"{msr(held, ours_c, codes):.4f}", f"{msr(held, ours_c, codes) / base:.3f}"])
    return out


def main():
    from maxsim.index.synthetic import ClusteredCollection

    faiss.omp_set_num_threads(2)
    load = load_average()
    rows = rows_for("synthetic-10k", np.concatenate(ClusteredCollection(100_000, dim=128, seed=0).documents(0, 10_000)))
    if CRANFIELD.exists():
        rows += rows_for("cranfield (default model)", np.load(CRANFIELD)["docs"].astype(np.float32))
    print(machine_line(load) + "\n")
    print(markdown_table(["collection", "step", "time", "same centroid as exhaustive", "mean squared residual",
                          "vs first row of its step"], rows))


if __name__ == "__main__":
    main()
