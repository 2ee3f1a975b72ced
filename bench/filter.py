"""Filtered search benchmark: a metadata filter at 1 % selectivity vs unfiltered search, exact and PLAID.

    python bench/filter.py                  # 100,000 documents
    python bench/filter.py --docs 5000      # quick run

Collection: ``maxsim.index.synthetic.ClusteredCollection`` with the model's dimension (the tiny
fixture model: 32), 20-40 token vectors per document, added to a ``Retriever`` (hybrid=False) as
precomputed ``embeddings`` in batches of 10,000. Metadata ``{"cat": "c00".."c99", "rank": r}``:
``cat`` uniform over 100 values, ``rank`` a permutation of 0..n-1, so both filters below keep 1 %.
Queries: 32 noisy tokens of a random document; the bench hands the Retriever those vectors in
place of the model's query encoding (the model only fixes the dimension).

Per index (exact float16, PLAID nbits 2) and filter: p50 latency of single-query
``search(k=10, filter=...)`` beside the unfiltered ``search(k=10)``, measured interleaved (best of
``--repeats`` per query), the ratio, the filter's SQL alone, and the top-10 against brute force
inside the filter (numpy MaxSim over the documents the filter selects, computed from the metadata
in Python, not from the store): exact must be identical (brute force over the float16-rounded
vectors it stores), PLAID gives recall@10 (brute force over the original vectors). The unfiltered
PLAID row gives its recall@10 against the exact index's unfiltered top-10. Result:
bench/results/filter.md.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from common import WORK, load_average, machine_line, markdown_table  # noqa: E402
from maxsim import MultiVectorEncoder  # noqa: E402
from maxsim.index.synthetic import ClusteredCollection  # noqa: E402
from maxsim.search import Retriever  # noqa: E402
from maxsim.search.filters import compile_filter  # noqa: E402

MODEL = ROOT / "tests" / "fixtures" / "models" / "st6-tiny-bert"
RESULTS = ROOT / "bench" / "results" / "filter.md"
BATCH = 10_000
K = 10
INDEXES = {"exact": {}, "plaid": {"nbits": 2}}


def metadata(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(cat, rank, metadata dicts) of ``n`` documents."""
    rng = np.random.default_rng(seed)
    cat, rank = rng.integers(0, 100, n), rng.permutation(n)
    return cat, rank, [{"cat": f"c{c:02d}", "rank": int(r)} for c, r in zip(cat, rank)]


def filters(cat: np.ndarray, rank: np.ndarray) -> list[tuple[str, dict, np.ndarray]]:
    """(name, filter, positions it keeps, computed in numpy) at 1 % selectivity."""
    n = len(cat)
    return [("cat = c07 (equality)", {"cat": "c07"}, np.nonzero(cat == 7)[0]),
            (f"rank < {n // 100} (range)", {"rank": {"$lt": n // 100}}, np.nonzero(rank < n // 100)[0])]


def build(kind: str, folder: Path, model, coll: ClusteredCollection, metas: list[dict]) -> tuple[Retriever, float]:
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    r = Retriever.create(folder, model=model, model_name=str(MODEL), index=kind, hybrid=False, **INDEXES[kind])
    for a in range(0, coll.n_docs, BATCH):
        b = min(a + BATCH, coll.n_docs)
        r.add([f"document {i}" for i in range(a, b)], ids=[f"d{i}" for i in range(a, b)], metadata=metas[a:b],
              embeddings=coll.documents(a, b))
    return r, time.perf_counter() - start


def brute_force(queries: list[np.ndarray], docs: list[np.ndarray], positions: np.ndarray) -> list[list[str]]:
    """Top-``K`` ids by float32 MaxSim of each query over ``docs`` (the vectors of ``positions``)."""
    flat = np.concatenate(docs)
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    out = []
    for q in queries:
        scores = np.maximum.reduceat(flat @ q.T, starts, axis=0).sum(axis=1)
        out.append([f"d{positions[j]}" for j in np.argsort(-scores, kind="stable")[:K]])
    return out


def timed_search(r: Retriever, text: str, flt: dict | None) -> tuple[float, list[str]]:
    start = time.perf_counter()
    hits = r.search(text, k=K, filter=flt)[0]
    return time.perf_counter() - start, [h.id for h in hits]


def sql_seconds(folder: Path, flt: dict, repeats: int) -> float:
    """Best time of the filter's SQL alone (ids of the matching documents) on the retriever's store."""
    where, params = compile_filter(flt)
    db = sqlite3.connect(f"file:{folder / 'state.sqlite3'}?mode=ro", uri=True)
    try:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            db.execute(f"SELECT d.id FROM documents d WHERE {where}", params).fetchall()
            times.append(time.perf_counter() - start)
        return min(times)
    finally:
        db.close()


def measure(r: Retriever, texts: list[str], flts: list[dict], repeats: int) -> tuple[np.ndarray, list[list]]:
    """(best latency per query (rows) of unfiltered search and each filter (columns), interleaved in
    each repeat; top-K ids per search kind and query)."""
    kinds = [None, *flts]
    best = np.full((len(texts), len(kinds)), np.inf)
    ids = [[None] * len(texts) for _ in kinds]
    for qi, text in enumerate(texts):
        for _ in range(repeats):
            for c, flt in enumerate(kinds):
                seconds, ids[c][qi] = timed_search(r, text, flt)
                best[qi, c] = min(best[qi, c], seconds)
    return best, ids


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.load = load_average()
    model = MultiVectorEncoder(MODEL, device="cpu")
    coll = ClusteredCollection(args.docs, dim=model.dim, doc_tokens=(20, 40), seed=0)
    queries = coll.queries(args.queries, seed=1)
    texts = [f"q{i}" for i in range(len(queries))]
    by_text = dict(zip(texts, queries))
    model.encode_query = lambda batch, **kwargs: [by_text[t] for t in batch]  # precomputed query vectors
    cat, rank, metas = metadata(args.docs)
    cases = filters(cat, rank)
    rows, unfiltered = [], []
    for kind in INDEXES:
        folder = WORK / f"filter-{kind}-{args.docs}"
        r, build_s = build(kind, folder, model, coll, metas)
        print(f"{kind}: built {len(r)} documents in {build_s:.0f} s", flush=True)
        r.search(texts[0], k=K)  # warm-up (caches built on first search)
        found, top = index_rows(kind, r, folder, coll, queries, texts, cases, args, unfiltered)
        rows, unfiltered = rows + found, top if kind == "exact" else unfiltered
        r.close()
        shutil.rmtree(folder, ignore_errors=True)
    report(args, rows)


def index_rows(kind, r, folder, coll, queries, texts, cases, args, exact_unfiltered) -> tuple[list, list]:
    """Table rows of one index, and its unfiltered top-K ids per query."""
    best, ids = measure(r, texts, [flt for _, flt, _ in cases], args.repeats)
    unf_recall = "1 (reference)" if kind == "exact" else f"{recall(ids[0], exact_unfiltered):.3f}"
    p50_u = np.median(best[:, 0]) * 1e3
    rows = []
    for c, (name, flt, positions) in enumerate(cases, start=1):
        docs = [coll.document(int(i)) for i in positions]
        if kind == "exact":  # what the index stores
            docs = [d.astype(np.float16).astype(np.float32) for d in docs]
        truth = brute_force(queries, docs, positions)
        inside = all(set(found) <= {f"d{i}" for i in positions} for found in ids[c])
        same = sum(f == t for f, t in zip(ids[c], truth))
        p50_f = np.median(best[:, c]) * 1e3
        rows.append([kind, name, f"{len(positions) / args.docs:.2%}", f"{p50_u:.1f}", f"{p50_f:.1f}",
                     f"{p50_f / p50_u:.3f}", f"{sql_seconds(folder, flt, args.repeats) * 1e3:.1f}",
                     f"{same}/{len(texts)}", f"{recall(ids[c], truth):.3f}", unf_recall, "yes" if inside else "NO"])
        print(markdown_table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    return rows, ids[0]


HEADER = ["index", "filter", "kept", "p50 unfiltered ms", "p50 filtered ms", "filtered / unfiltered",
          "SQL ms", "top-10 = brute force", "recall@10 in filter", "recall@10 unfiltered", "hits inside filter"]


def report(args, rows: list[list]) -> None:
    text = (f"# Filtered search (bench/filter.py)\n\n`python bench/filter.py --docs {args.docs} --queries "
            f"{args.queries} --repeats {args.repeats}`\n\n{machine_line(args.load)}\n\n"
            + markdown_table(HEADER, rows) + "\n")
    print("\n" + text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
