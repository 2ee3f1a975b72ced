"""Text-level rerank quality on Cranfield: MaxSim reranking BM25's top-100 vs BM25 and exact MaxSim.

BM25 is the Retriever's (bm25s, English stopwords + Snowball stemmer); documents are "title text".
``maxsim.rerank`` is run twice on the same BM25 candidates: from texts (it encodes the distinct
candidates itself) and from the corpus embeddings (the embedding form); exact MaxSim scores every
document. The two rerank rows must agree, the rerank must beat BM25 and match exact MaxSim's nDCG@10
within 0.01 (the candidates hold most relevant documents: see the recall@100 line).

    python -P bench/rerank.py [--model default] [--dtype float32] [--depth 100]
                              [--data tests/fixtures/data/cranfield]

(``-P``: do not put bench/ first on sys.path, where bench/maxsim.py would shadow the package.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from maxsim.evaluation.loaders import document_text, load_beir_folder
from maxsim.evaluation.metrics import ndcg_at_k, recall_at_k
from maxsim.models import MultiVectorEncoder
from maxsim.scoring import maxsim, topk
from maxsim.search.bm25 import BM25Index
from maxsim.search.rerank import rerank

sys.path.append(str(Path(__file__).resolve().parent))  # after maxsim: bench/maxsim.py must not shadow it
from common import load_average, machine_line  # noqa: E402

CRANFIELD = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data" / "cranfield"


def mean_metric(metric, rankings: dict[str, list[str]], qrels: dict, k: int) -> float:
    """Mean of ``metric(ranking, grades, k)`` over the judged queries."""
    return sum(metric(rankings.get(qid, []), grades, k) for qid, grades in qrels.items()) / len(qrels)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--depth", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--data", default=str(CRANFIELD))
    parser.add_argument("--dtype", default="float32", help="encoding precision (float32: the exact path; auto, mixed)")
    args = parser.parse_args()
    load = load_average()
    queries, corpus, qrels = load_beir_folder(args.data)
    qrels = {qid: g for qid, g in qrels.items() if qid in queries and any(v > 0 for v in g.values())}
    qids, doc_ids = list(qrels), list(corpus)
    query_texts, texts = [queries[q] for q in qids], {d: document_text(corpus[d]) for d in doc_ids}

    bm25 = BM25Index.build(doc_ids, [texts[d] for d in doc_ids])
    lexical, bm25_s = timed(lambda: bm25.top(query_texts, args.depth))
    candidates = [[doc for doc, _ in hits] for hits in lexical]
    model, load_s = timed(lambda: MultiVectorEncoder.default(dtype=args.dtype) if args.model == "default"
                          else MultiVectorEncoder(args.model, dtype=args.dtype))

    by_text, text_s = timed(lambda: rerank(query_texts, [[texts[d] for d in c] for c in candidates],
                                           documents_ids=candidates, model=model, show_progress_bar=True))
    corpus_embeddings, encode_s = timed(lambda: model.encode_document([texts[d] for d in doc_ids],
                                                                      show_progress_bar=True))
    query_embeddings = model.encode_query(query_texts)
    embedding_of = dict(zip(doc_ids, corpus_embeddings))
    by_embedding, embedding_s = timed(lambda: rerank(
        queries_embeddings=query_embeddings, documents_embeddings=[[embedding_of[d] for d in c] for c in candidates],
        documents_ids=candidates))
    (indices, _), exact_s = timed(lambda: topk(maxsim(query_embeddings, corpus_embeddings), 10))

    rows = [("BM25", dict(zip(qids, candidates)), bm25_s),
            (f"BM25 top-{args.depth} reranked by MaxSim, from texts (encodes the candidates)",
             {q: [h["id"] for h in hits] for q, hits in zip(qids, by_text)}, text_s),
            (f"BM25 top-{args.depth} reranked by MaxSim, from corpus embeddings",
             {q: [h["id"] for h in hits] for q, hits in zip(qids, by_embedding)}, embedding_s),
            ("exact MaxSim over every document (corpus embeddings)",
             {q: [doc_ids[j] for j in row] for q, row in zip(qids, indices.tolist())}, exact_s)]
    print(f"Cranfield: {len(doc_ids)} documents, {len(qids)} judged queries; model {args.model!r} "
          f"({args.dtype}, load {load_s:.1f} s); corpus encode {encode_s:.1f} s; BM25 recall@{args.depth} "
          f"{mean_metric(recall_at_k, rows[0][1], qrels, args.depth):.4f}\n")
    print("| ranking | nDCG@10 | seconds (all queries) |")
    print("|---|---|---|")
    ndcg = []
    for name, rankings, seconds in rows:
        ndcg.append(mean_metric(ndcg_at_k, rankings, qrels, 10))
        print(f"| {name} | {ndcg[-1]:.4f} | {seconds:.1f} |")
    same = all([h["id"] for h in a] == [h["id"] for h in b] for a, b in zip(by_text, by_embedding))
    print(f"\nrerank beats BM25: {ndcg[1] > ndcg[0]} ({ndcg[1] - ndcg[0]:+.4f}); |rerank - exact| = "
          f"{abs(ndcg[1] - ndcg[3]):.4f} (<= 0.01: {abs(ndcg[1] - ndcg[3]) <= 0.01}); "
          f"text and embedding forms give the same order: {same}")
    print(f"\n{machine_line(load)}")


if __name__ == "__main__":
    main()
