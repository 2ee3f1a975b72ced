"""Hybrid search quality on Cranfield: nDCG@10 of BM25 alone, MaxSim alone and both fusions.

Nothing is tuned per collection: RRF k=60, score fusion with equal weights, each ranker giving
its top 100 candidates. Documents are "title text" (the BEIR convention). BM25 is the Retriever's
(English stopwords + Snowball stemmer); one row repeats it without the stemmer (bm25s defaults, the
usual BM25 baseline on Cranfield: 0.352).

    python -P bench/hybrid.py [--model default] [--index exact] [--data tests/fixtures/data/cranfield]

(``-P``: do not put bench/ first on sys.path, where bench/maxsim.py would shadow the package.)

Prints a markdown table (nDCG@10, mean ms per query), the build time and the machine line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np
import pytrec_eval

from maxsim.search import Retriever, fuse
from maxsim.search.fusion import FUSION_DEPTH

sys.path.append(str(Path(__file__).resolve().parent))  # after maxsim: bench/maxsim.py must not shadow it
from common import load_average, machine_line  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / "tests" / "fixtures"  # models/, data/ (see tests/README.md)


def load_cranfield(folder: Path):
    corpus = [json.loads(line) for line in open(folder / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(line) for line in open(folder / "queries.jsonl", encoding="utf-8")]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return corpus, queries, qrels


def ndcg_at_10(qrels, rankings: dict[str, list[tuple[str, float]]]) -> float:
    """Mean nDCG@10 over the judged queries (a query with no hits counts 0)."""
    run = {}
    for qid, hits in rankings.items():
        # pytrec_eval sorts by score; give strictly decreasing scores so our order (and tie-breaks) holds
        run[qid] = {doc_id: float(len(hits) - rank) for rank, (doc_id, _) in enumerate(hits)} or {"__none__": 0.0}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    return sum(v["ndcg_cut_10"] for v in per_query.values()) / len(qrels)


def bm25_without_stemmer(documents, doc_ids, qids, queries, depth: int) -> dict[str, list[tuple[str, float]]]:
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(documents, stopwords="en", return_ids=False, show_progress=False), show_progress=False)
    rankings = {}
    for qid, tokens in zip(qids, bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)):
        scores = bm25.get_scores(tokens) if tokens else np.zeros(len(doc_ids))
        order = np.argsort(-scores, kind="stable")[:depth]
        rankings[qid] = [(doc_ids[j], float(scores[j])) for j in order if scores[j] > 0]
    return rankings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--index", default="exact")
    parser.add_argument("--data", default=str(SHARED / "data" / "cranfield"))
    args = parser.parse_args()
    corpus, queries, qrels = load_cranfield(Path(args.data))
    queries = [q for q in queries if q["_id"] in qrels]
    texts, qids = [q["text"] for q in queries], [q["_id"] for q in queries]
    load = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        retriever = Retriever.create(Path(tmp) / "cranfield", index=args.index, hybrid=True, model_name=args.model)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        documents = [f"{d['title']} {d['text']}".strip() for d in corpus]
        retriever.add(documents, ids=[d["_id"] for d in corpus], batch_size=32)
        add_s = time.perf_counter() - start

        unstemmed = bm25_without_stemmer(documents, [d["_id"] for d in corpus], qids, texts, FUSION_DEPTH)
        rows = [("BM25 (bm25s, English stopwords, no stemmer)",
                 {qid: hits[:10] for qid, hits in unstemmed.items()}, None)]
        start = time.perf_counter()
        bm25 = retriever.bm25.top(texts, 10)
        rows.append(("BM25 (the Retriever's: English stopwords + Snowball stemmer)", dict(zip(qids, bm25)),
                     time.perf_counter() - start))
        for name, hybrid, fusion in [("MaxSim", False, "rrf"), ("MaxSim + BM25, RRF (k=60)", True, "rrf"),
                                     ("MaxSim + BM25, min-max score fusion", True, "score")]:
            start = time.perf_counter()
            results = retriever.search(texts, k=10, hybrid=hybrid, fusion=fusion)
            rankings = {qid: [(h.id, h.score) for h in hits] for qid, hits in zip(qids, results)}
            rows.append((name, rankings, time.perf_counter() - start))
        # ablation: the same fusions with the unstemmed BM25
        dense = dict(zip(qids, retriever.index.search(retriever.model.encode_query(texts), k=FUSION_DEPTH)))
        for name, method in [("ablation: RRF with the unstemmed BM25", "rrf"),
                             ("ablation: score fusion with the unstemmed BM25", "score")]:
            rows.append((name, {q: fuse([dense[q], unstemmed[q]], method)[:10] for q in qids}, None))
        stats = retriever.stats()
        retriever.close()

    print(f"Cranfield: {len(corpus)} documents, {len(qids)} judged queries; model {args.model!r} "
          f"(load {load_s:.1f} s), index {args.index!r}; add (encode + index + BM25) {add_s:.1f} s; "
          f"{stats['tokens']} token vectors, {stats['bytes_on_disk'] / 1e6:.1f} MB on disk\n")
    print("| ranking | nDCG@10 | ms / query (batch of all queries) |")
    print("|---|---|---|")
    for name, rankings, seconds in rows:
        ms = "-" if seconds is None else f"{1000 * seconds / len(qids):.1f}"
        print(f"| {name} | {ndcg_at_10(qrels, rankings):.4f} | {ms} |")
    print(f"\n{machine_line(load)}", flush=True)


if __name__ == "__main__":
    main()
