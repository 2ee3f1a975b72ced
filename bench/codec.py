"""PLAID codec training and assignment: speed and quality of ``maxsim.index.codec`` vs the exhaustive scan.

    python bench/codec.py              # synthetic-10k (bench/index.py's subset); Cranfield too if cached

Side by side in one run, on the k-means sample maxsim trains on (n_centroids * 32 token vectors, 4
iterations, seed 0) and on 200,000 held-out token vectors:
- k-means: faiss's exhaustive ``faiss.Kmeans`` vs ``codec.kmeans`` (each
  iteration assigns through the product-quantized fast scan); quality = mean squared residual of the
  held-out vectors against their exhaustively found nearest centroid;
- assignment: the exhaustive scan (``faiss.IndexFlat``), an IVF over the centroids probing 1/8 of its
  lists and ``codec.assign_centroids`` (the fast scan + exact re-ranking of the proposals its
  calibration picks, or the exhaustive scan): microseconds per vector, share of vectors given the
  exhaustive scan's centroid, mean squared residual. Fitted on: synthetic-10k and Cranfield; held
  out: nq-kd + msmarco-kd tokens, synthetic 64-dim noise 0.9.
Then the residual coding, on the same centroids (the training sample's residuals, codebooks
trained on them, measured on held-out vectors): one set of 2-bit buckets shared by all dimensions
(ColBERTv2's, maxsim's format 1), 2-bit buckets per dimension (Lloyd), the product quantizer of 4
dimensions per byte (now, nbits 2), and the other codecs (1 bit, ternary, 4 bits): bytes per token
of the residual, mean squared error, microseconds per vector to code. Prints markdown tables; the
Cranfield rows need bench/_work/cranfield-default-model.npz (written by ``bench/index_data.py``,
e.g. through ``bench/index.py --only real``).
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
from maxsim.index.centroids import assign_centroids, auto_n_centroids, centroid_index, kmeans  # noqa: E402
from maxsim.index.residual import ScalarQuantizer, train_quantizer  # noqa: E402

CRANFIELD = ROOT / "bench" / "_work" / "cranfield-default-model.npz"
HELD_OUT = [ROOT / "bench" / "_work" / f"{name}-default-model.npz" for name in ("nq-kd", "msmarco-kd")]


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
    chosen = getattr(centroid_index(ours_c, True, held), "k_factor", None)
    ours = f"codec.assign_centroids ({int(chosen)} proposals)" if chosen else "codec.assign_centroids (exhaustive)"
    for label, fn in (("exhaustive scan", exhaustive), ("IVF, 1/8 of the lists", ivf_eighth),
                      (ours, lambda v, c: assign_centroids(v, c, True))):
        t = time.perf_counter()
        codes = fn(held, ours_c)
        us = (time.perf_counter() - t) / len(held) * 1e6
        out.append([name, f"assignment: {label}", f"{us:.2f} us/vector", f"{(codes == truth).mean():.4f}",
                    f"{msr(held, ours_c, codes):.4f}", f"{msr(held, ours_c, codes) / base:.3f}"])
    return out


def residual_rows(name, x):
    """Residual codings of held-out vectors on the same centroids: bytes, error, coding time."""
    rng = np.random.default_rng(1)
    n_c = auto_n_centroids(len(x))
    sample = x[np.sort(rng.choice(len(x), min(len(x), n_c * 32), replace=False))]
    held = x[rng.choice(len(x), min(len(x), 100_000), replace=False)]
    centroids = kmeans(sample, n_c, 4, 0, True)
    train_r = sample - centroids[assign_centroids(sample, centroids, True)]
    r = held - centroids[assign_centroids(held, centroids, True)]
    flat = train_r[:: max(1, len(train_r) // 20_000)].ravel()
    shared_cut = np.quantile(flat, [0.25, 0.5, 0.75]).astype(np.float32)
    which = (flat[:, None] >= shared_cut).sum(1)
    shared = np.concatenate([shared_cut, [flat[which == b].mean() for b in range(4)]]).astype(np.float32)
    quantizers = {"2 bits: one bucket set for all dimensions (format 1)": ScalarQuantizer.from_shared_buckets(
                      x.shape[1], shared, 2),
                  "2 bits: buckets per dimension (Lloyd)": ScalarQuantizer.train(train_r, 4, 4),
                  "2 bits: product quantizer, 4 dims per byte (now)": train_quantizer(train_r, 2),
                  "1 bit: product quantizer, 8 dims per byte": train_quantizer(train_r, 1),
                  "ternary: 3 levels per dimension, 5 per byte": train_quantizer(train_r, "ternary"),
                  "4 bits: product quantizer, 2 dims per byte": train_quantizer(train_r, 4)}
    out, base = [], float((r ** 2).sum(1).mean())
    for label, q in quantizers.items():
        t = time.perf_counter()
        coded = q.encode(r)
        us = (time.perf_counter() - t) / len(r) * 1e6
        err = float(((q.decode(coded) - r) ** 2).sum(1).mean())
        out.append([name, label, coded.shape[1], f"{err:.4f}", f"{err / base:.3f}", f"{us:.2f}"])
    return out


def main():
    from maxsim.index.synthetic import ClusteredCollection

    faiss.omp_set_num_threads(2)
    load = load_average()
    rows = rows_for("synthetic-10k", np.concatenate(ClusteredCollection(100_000, dim=128, seed=0).documents(0, 10_000)))
    if CRANFIELD.exists():
        rows += rows_for("cranfield (default model)", np.load(CRANFIELD)["docs"].astype(np.float32))
    if all(Path(p).exists() for p in HELD_OUT):
        rows += rows_for("nq-kd + msmarco-kd (held out)",
                         np.concatenate([np.load(p)["docs"] for p in HELD_OUT]).astype(np.float32))
    rows += rows_for("synthetic 64 dims, noise 0.9 (held out)",
                     np.concatenate(ClusteredCollection(50_000, dim=64, noise=0.9, seed=4).documents(0, 10_000)))
    x = np.concatenate(ClusteredCollection(20_000, dim=128, n_topics=2000, doc_tokens=(30, 90), noise=0.6,
                                           seed=0).documents(0, 5_000))
    coded = residual_rows("synthetic noise 0.6", x)
    if CRANFIELD.exists():
        coded += residual_rows("cranfield (default model)", np.load(CRANFIELD)["docs"].astype(np.float32))
    print(machine_line(load) + "\n")
    print(markdown_table(["collection", "step", "time", "same centroid as exhaustive", "mean squared residual",
                          "vs first row of its step"], rows))
    print()
    print(markdown_table(["collection", "residual coding", "bytes per token", "mean squared error",
                          "vs the residual itself", "us per vector to code"], coded))


if __name__ == "__main__":
    main()
