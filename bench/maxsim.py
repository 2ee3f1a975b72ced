"""MaxSim matrix speed: maxsim vs sentence-transformers' ``similarity``, and both against this
machine's plain matmul FLOP rate for the same number of multiply-adds.

Data: 100 queries x 32 vectors, 10,000 documents x 50-150 vectors (mean ~100), 128 dims, unit
vectors from a seeded Gaussian. FLOPs counted as 2 * (query vectors) * (document vectors) * dim.

    python bench/maxsim.py [--docs 10000] [--repeats 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.append(sys.path.pop(0))  # bench/ last, so that the maxsim package wins over this file
else:
    # Any script run from bench/ has bench/ first on sys.path, so ``import maxsim`` would find this
    # file: hand the importer the real package (the import system returns sys.modules[name]).
    _saved_path = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    del sys.modules[__name__]
    import maxsim as _package

    sys.path[:] = _saved_path
    sys.modules[__name__] = _package

import argparse

import numpy as np
import torch

from common import best_of, load_average, machine_line, markdown_table
from maxsim.scoring import maxsim


def unit_vectors(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def matmul_rate(rows: int, cols_total: int, dim: int, repeats: int) -> float:
    """GFLOP/s of plain float32 matmuls (rows, dim) x (dim, cols) covering ``cols_total`` columns in
    blocks of 16,384, in both orientations; the faster one is the machine's rate."""
    a, b = torch.randn(rows, dim), torch.randn(dim, 16384)
    a_t, b_t = b.T.contiguous(), a.T.contiguous()
    steps = max(1, cols_total // 16384)

    def run(x, y):
        for _ in range(steps):
            torch.matmul(x, y)

    seconds = min(best_of(lambda: run(a, b), repeats), best_of(lambda: run(a_t, b_t), repeats))
    return 2 * rows * 16384 * steps * dim / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = load_average()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    dim = 128
    queries = [unit_vectors(rng, 32, dim) for _ in range(args.queries)]
    docs = [unit_vectors(rng, int(n), dim) for n in rng.integers(50, 151, args.docs)]
    n_doc_vectors = sum(len(d) for d in docs)
    flops = 2 * 32 * args.queries * n_doc_vectors * dim

    from sentence_transformers.util import SimilarityFunction

    st_similarity = SimilarityFunction.to_similarity_fn("maxsim")  # what MultiVectorEncoder.similarity calls
    q_t, d_t = [torch.from_numpy(q) for q in queries], [torch.from_numpy(d) for d in docs]
    ours = maxsim(queries, docs)
    theirs = st_similarity(q_t, d_t).numpy()
    diff = float(np.abs(ours - theirs).max())
    t_ours = best_of(lambda: maxsim(queries, docs), args.repeats)
    bf16_diff = float(np.abs(maxsim(queries, docs, dtype=torch.bfloat16) - ours).max())
    t_bf16 = best_of(lambda: maxsim(queries, docs, dtype=torch.bfloat16), args.repeats)
    t_theirs = best_of(lambda: st_similarity(q_t, d_t), args.repeats)
    peak = matmul_rate(32 * args.queries, n_doc_vectors, dim, args.repeats)
    rows = [
        ["maxsim.scoring.maxsim", f"{t_ours:.2f}", f"{flops / t_ours / 1e9:.1f}", f"{flops / t_ours / 1e9 / peak:.0%}"],
        ["maxsim.scoring.maxsim(dtype=torch.bfloat16)", f"{t_bf16:.2f}", f"{flops / t_bf16 / 1e9:.1f}",
         f"{flops / t_bf16 / 1e9 / peak:.0%}"],
        ["sentence-transformers similarity", f"{t_theirs:.2f}", f"{flops / t_theirs / 1e9:.1f}",
         f"{flops / t_theirs / 1e9 / peak:.0%}"],
        ["plain matmul (same multiply-adds)", f"{flops / peak / 1e9:.2f}", f"{peak:.1f}", "100%"],
    ]
    print(markdown_table(["implementation", "seconds", "GFLOP/s", "of matmul rate"], rows))
    print(f"\n{args.queries} queries x 32 vectors, {args.docs} documents, {n_doc_vectors} document vectors, "
          f"dim {dim}; speed-up vs sentence-transformers {t_theirs / t_ours:.2f}x; max abs diff {diff:.1e} "
          f"(bfloat16 vs float32: {bf16_diff:.1e}); "
          f"threads {torch.get_num_threads()}")
    print(machine_line(load))


if __name__ == "__main__":
    main()
