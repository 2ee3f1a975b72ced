"""Token pooling on Cranfield: share of stored document vectors and nDCG@10 per pool factor.

``MultiVectorEncoder.default()`` encodes the 1400 documents and 225 queries once; documents are
pooled with ``maxsim.models.pooling.pool_embeddings`` (Ward hierarchical clustering, [CLS] kept,
L2-normalised means unless --no-normalize); every query is scored exactly against every pooled
document (``maxsim.scoring.maxsim``) and ranked with ``maxsim.evaluation`` metrics.

    python -P bench/pooling.py [--factors 1,2,3] [--dtype float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from maxsim import MultiVectorEncoder
from maxsim.evaluation import evaluate_rankings, load_beir_folder
from maxsim.evaluation.loaders import document_text
from maxsim.models.pooling import pool_embeddings
from maxsim.scoring import maxsim, topk

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # after maxsim: bench/maxsim.py must not shadow it
from common import SHARED, load_average, machine_line, markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--factors", default="1,2,3")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--no-normalize", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = load_average()
    queries, corpus, qrels = load_beir_folder(SHARED / "data" / "cranfield")
    doc_ids = sorted(corpus)
    model = MultiVectorEncoder.default(device="cpu", dtype=args.dtype)
    q = model.encode_query(list(queries.values()))
    docs = model.encode_document([document_text(corpus[i]) for i in doc_ids])
    total = sum(len(d) for d in docs)
    rows, base = [], None
    for factor in [float(x) for x in args.factors.split(",")]:
        start = time.perf_counter()
        pooled = pool_embeddings(docs, factor, normalize=not args.no_normalize)
        seconds = time.perf_counter() - start
        idx, scores = topk(maxsim(q, pooled), 100)
        rankings = {qid: [(doc_ids[j], float(s)) for j, s in zip(r, rs)] for qid, r, rs in zip(queries, idx, scores)}
        ndcg = evaluate_rankings(rankings, qrels, "cranfield", "MaxSim")["cranfield_MaxSim_ndcg@10"]
        base = ndcg if base is None else base
        kept = sum(len(d) for d in pooled)
        rows.append([f"{factor:g}", kept, f"{kept / total:.1%}", f"{ndcg:.4f}", f"{ndcg - base:+.4f}",
                     f"{seconds:.1f}"])
        print(rows[-1], flush=True)
    print(f"\nCranfield, MultiVectorEncoder.default(dtype={args.dtype!r}), normalize={not args.no_normalize}\n")
    print(markdown_table(["pool factor", "document vectors", "share", "nDCG@10", "vs no pooling", "pooling (s)"],
                         rows))
    print(f"\n{machine_line(load)}")


if __name__ == "__main__":
    main()
