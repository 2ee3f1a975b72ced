"""Real collections for the index benchmarks, encoded once with the default model (cached in bench/_work/).

- ``cranfield``: tests/fixtures/data/cranfield (1,400 abstracts, 225 judged queries, graded qrels);
- ``nq-kd`` / ``msmarco-kd``: the KD samples of tests/fixtures/data used as small corpora: every
  distinct document of the sample, its queries, relevance = the positive labels (10 queries each).

``load(name)`` -> ``Collection`` (float32 token vectors of documents and queries, ids, qrels);
``ndcg(hits, qrels)`` and ``judged_recall`` score rankings (``maxsim.evaluation.metrics``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "data"
WORK = ROOT / "bench" / "_work"
NAMES = ("cranfield", "nq-kd", "msmarco-kd")


@dataclass
class Collection:
    name: str
    docs: list[np.ndarray]  # (n_tokens, dim) float32 per document
    ids: list[str]
    queries: list[np.ndarray]
    qids: list[str]
    qrels: dict[str, dict[str, float]]  # query id -> {document id: grade}


def _texts(name: str):
    """(doc ids, doc texts, query ids, query texts, qrels) of a collection."""
    if name == "cranfield":
        folder = DATA / "cranfield"
        corpus = [json.loads(x) for x in open(folder / "corpus.jsonl", encoding="utf-8") if x.strip()]
        queries = [json.loads(x) for x in open(folder / "queries.jsonl", encoding="utf-8") if x.strip()]
        qrels: dict[str, dict[str, float]] = {}
        for line in list(open(folder / "qrels.tsv", encoding="utf-8"))[1:]:
            q, d, s = line.split()
            qrels.setdefault(q, {})[d] = float(s)
        queries = [q for q in queries if q["_id"] in qrels]
        return ([d["_id"] for d in corpus], [f"{d.get('title', '')} {d['text']}".strip() for d in corpus],
                [q["_id"] for q in queries], [q["text"] for q in queries], qrels)
    rows = [json.loads(x) for x in open(DATA / f"{name.replace('-kd', '')}-kd-flagembedding" / "train.jsonl",
                                        encoding="utf-8") if x.strip()]
    texts: dict[str, str] = {}
    qrels = {}
    for qi, row in enumerate(rows):
        for text, label in zip(row["documents"], row["labels"]):
            doc_id = texts.setdefault(text, f"d{len(texts)}")
            if label:
                qrels.setdefault(f"q{qi}", {})[doc_id] = 1.0
    ids = list(texts.values())
    return ids, list(texts), [f"q{i}" for i in range(len(rows))], [r["query"] for r in rows], qrels


def load(name: str) -> Collection:
    """The collection ``name`` (one of NAMES), encoded with the default model on first use."""
    doc_ids, doc_texts, qids, qtexts, qrels = _texts(name)
    cache = WORK / f"{name}-default-model.npz"
    if not cache.exists():
        from maxsim import MultiVectorEncoder
        model = MultiVectorEncoder.default(device="cpu")
        t = time.perf_counter()
        docs = model.encode(doc_texts, task="document", batch_size=32)
        queries = model.encode(qtexts, task="query", batch_size=64)
        print(f"{name}: encoded in {time.perf_counter() - t:.0f} s", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        np.savez(cache, docs=np.concatenate(docs).astype(np.float16), doc_lens=[len(d) for d in docs],
                 queries=np.concatenate(queries).astype(np.float16), query_lens=[len(q) for q in queries])
    z = np.load(cache)
    split = lambda a, lens: np.split(a.astype(np.float32), np.cumsum(lens)[:-1])
    return Collection(name, split(z["docs"], z["doc_lens"]), doc_ids, split(z["queries"], z["query_lens"]), qids, qrels)


def ndcg(hits: list[list[str]], coll: Collection, k: int = 10, queries: list[int] | None = None) -> float:
    """Mean nDCG@k of ``hits`` (document ids per query, best first) over ``queries`` (positions; all)."""
    from maxsim.evaluation.metrics import ndcg_at_k
    positions = range(len(hits)) if queries is None else queries
    return float(np.mean([ndcg_at_k(hits[i], coll.qrels[coll.qids[i]], k) for i in positions]))


def judged_recall(hits: list[list[str]], coll: Collection, k: int = 100) -> float:
    """Mean share of each query's judged relevant documents found in its top ``k``."""
    from maxsim.evaluation.metrics import recall_at_k
    return float(np.mean([recall_at_k(h, coll.qrels[q], k) for h, q in zip(hits, coll.qids)]))
