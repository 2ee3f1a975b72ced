"""MUVERA first stage (with and without exact re-ranking) against PlaidIndex and ExactIndex, side by side.

    python bench/muvera.py --quick       # 2,000 synthetic documents + 30 Cranfield queries (~5 min)
    python bench/muvera.py               # 10,000 and 100,000 synthetic documents + Cranfield (~1 h)
    python bench/muvera.py --docs 300000 --only synthetic --settings defaults ivf

Memory: the indexes of one collection are held together (at 100,000 documents ~6 GB: the
ExactIndex's in-memory scan copy, the MUVERA indexes, PLAID's files in the page cache).

Collections
- ``synthetic-<n>``: ``maxsim.index.synthetic.ClusteredCollection`` as bench/index.py's noise-0.6
  set (2,000 topic centres, token noise 0.6, 30-90 tokens, 128 dims), ``--docs`` documents added
  in batches of 10,000 (the first trains what needs training), ``--queries`` queries;
- ``cranfield``: tests/fixtures/data/cranfield (1,400 abstracts, 225 judged queries) encoded with
  the default model in float32, cached in bench/_work/.

Rows per collection: ExactIndex (float16, the ground truth), PlaidIndex at its defaults, and per
MUVERA setting (``SETTINGS``) the first stage alone (the FDE top 10, no re-ranking) and its
candidates re-ranked by exact MaxSim: by the ExactIndex's own search restricted to them, or here
on the exact index's vectors or on the PLAID index's decompressed codes (``get_embeddings``: the
vectors a PLAID first stage would score).
Columns: recall@10 against exact, nDCG@10 (Cranfield), p50 ms with one query per call, ms per query
with all queries in one call (both also as ratios to exact), build seconds, bytes per document of
the first stage alone and with the vectors its re-ranking reads. Writes bench/results/muvera.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "bench"))  # after src/: bench/maxsim.py must not shadow the package
from common import SHARED, WORK, markdown_table  # noqa: E402
from maxsim.evaluation.metrics import ndcg_at_k  # noqa: E402
from maxsim.index import ExactIndex, PlaidIndex  # noqa: E402
from maxsim.index.muvera import MuveraIndex, MuveraParams  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "muvera.md"
BATCH = 10_000
SETTINGS = {  # key -> (row name, settings, [(candidates re-ranked per query, by what)]: one row each)
    "defaults": ("MUVERA defaults (4,096 dims, HNSW)", MuveraParams(),
                 [(100, "index"), (500, "index"), (100, "vectors"), (500, "vectors"), (100, "plaid")]),
    "ivf": ("MUVERA 4,096 dims, IVF", MuveraParams(graph="ivf"), [(500, "index")]),
    "paper": ("MUVERA 10,240 dims (the paper's FDE), HNSW", MuveraParams(k_sim=5, repetitions=20), [(500, "index")]),
}
RERANKS = {"index": "ExactIndex (its search over them)", "vectors": "exact vectors (get_embeddings, MaxSim here)",
           "plaid": "PLAID codes (get_embeddings: decompressed)"}
STORE = {"index": "exact", "vectors": "exact", "plaid": "plaid"}  # the index holding the vectors re-ranked


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def timed(search, queries: list[np.ndarray], one_at_a_time: int):
    """``search(queries) -> per query a list of ids``: (ids of all queries searched in one call,
    ms per query of that call, p50 ms of the first ``one_at_a_time`` searched one per call)."""
    search(queries[:1])  # warm-up
    start = time.perf_counter()
    ids = search(queries)
    batched = (time.perf_counter() - start) / len(queries) * 1000
    times = []
    for q in queries[:one_at_a_time]:
        start = time.perf_counter()
        search([q])
        times.append(time.perf_counter() - start)
    return ids, batched, float(np.median(times)) * 1000


def hit_ids(results) -> list[list[str]]:
    return [[doc_id for doc_id, _ in hits] for hits in results]


@dataclass
class Collection:
    """What every row of one collection is measured against."""
    name: str
    queries: list
    qrels: list | None
    n_docs: int = 0
    truth: list = field(default_factory=list)
    reference: tuple = (1.0, 1.0)  # exact's (batched, one per call) ms
    build_s: dict = field(default_factory=dict)
    size: dict = field(default_factory=dict)  # bytes per document
    stores: dict = field(default_factory=dict)  # "exact" / "plaid" index
    rerank: dict = field(default_factory=dict)  # RERANKS key -> what MuveraIndex.search re-ranks with


class Bench:
    def __init__(self, args):
        self.args, self.rows = args, []
        self.load = [("start", os.getloadavg())]
        WORK.mkdir(parents=True, exist_ok=True)

    def run(self, c: Collection, batches, dim: int):
        """Build every index from ``batches()`` (an iterator of (ids, vectors)), measure each method."""
        built = {key: self._new(key, c.name, dim) for key in ["exact", "plaid", *self.args.settings]}
        c.build_s = dict.fromkeys(built, 0.0)
        for ids, docs in batches():
            c.n_docs += len(ids)
            for key, index in built.items():
                start = time.perf_counter()
                index.add(ids, docs)
                c.build_s[key] += time.perf_counter() - start
            print(f"{c.name}: {c.n_docs} documents added", flush=True)
        c.stores = {"exact": built["exact"], "plaid": built["plaid"]}
        c.size = {key: folder_bytes(index.folder) / c.n_docs for key, index in c.stores.items()}
        c.rerank = {"index": c.stores["exact"], "vectors": c.stores["exact"].get_embeddings,
                    "plaid": c.stores["plaid"].get_embeddings}
        exact_search = lambda qs: hit_ids(c.stores["exact"].search(qs, k=10))
        c.truth, batched, one = timed(exact_search, c.queries, self.args.one_at_a_time)
        c.reference = (batched, one)
        self._row(c, "ExactIndex float16", c.truth, c.reference, c.build_s["exact"], c.size["exact"], c.size["exact"])
        self._measure(c, "PlaidIndex defaults", lambda qs: hit_ids(c.stores["plaid"].search(qs, k=10)),
                      c.build_s["plaid"], c.size["plaid"], c.size["plaid"])
        for key in self.args.settings:
            self._muvera(c, key, built[key])
        for index in c.stores.values():
            shutil.rmtree(index.folder, ignore_errors=True)
        self.load.append((c.name, os.getloadavg()))
        self.write()

    def _muvera(self, c: Collection, key: str, stage: MuveraIndex):
        """Rows of one MUVERA setting: the FDE top 10 alone, then one per (candidates, re-ranking)."""
        label, _, runs = SETTINGS[key]
        folder = WORK / f"muvera-bench-{c.name}-stage"
        shutil.rmtree(folder, ignore_errors=True)
        stage.save(folder)
        own = folder_bytes(folder) / c.n_docs
        shutil.rmtree(folder, ignore_errors=True)
        self._measure(c, f"{label}, FDE top 10 (no re-ranking)", lambda qs: stage.candidates(qs, 10),
                      c.build_s[key], own, own)
        for n, how in runs:
            search = lambda qs, r=c.rerank[how], n=n: hit_ids(stage.search(qs, 10, r, n_candidates=n))
            store = STORE[how]
            self._measure(c, f"{label} + re-rank of {n} by {RERANKS[how]}", search,
                          c.build_s[key] + c.build_s[store], own, own + c.size[store])

    def _new(self, key: str, name: str, dim: int):
        if key in SETTINGS:
            return MuveraIndex(dim, SETTINGS[key][1])
        folder = WORK / f"muvera-bench-{name}-{key}"
        shutil.rmtree(folder, ignore_errors=True)
        return ExactIndex.create(folder, dim) if key == "exact" else PlaidIndex.create(folder, dim)

    def _measure(self, c: Collection, method: str, search, build_s, own_bytes, total_bytes):
        ids, batched, one = timed(search, c.queries, self.args.one_at_a_time)
        self._row(c, method, ids, (batched, one), build_s, own_bytes, total_bytes)

    def _row(self, c: Collection, method, ids, times, build_s, own_bytes, total_bytes):
        recall = float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(ids, c.truth)]))
        row = {"collection": c.name, "method": method, "recall": recall, "one_ms": times[1], "batched_ms": times[0],
               "one_x": times[1] / c.reference[1], "batched_x": times[0] / c.reference[0], "build_s": build_s,
               "first_stage_bytes": own_bytes, "total_bytes": total_bytes}
        if c.qrels is not None:
            row["ndcg"] = float(np.mean([ndcg_at_k(r, grades, 10) for r, grades in zip(ids, c.qrels)]))
        self.rows.append(row)
        print(json.dumps(row), flush=True)

    # ---------------------------------------------------------------- collections
    def synthetic(self, n: int):
        from maxsim.index.synthetic import ClusteredCollection
        coll = ClusteredCollection(n, dim=128, n_topics=2000, doc_tokens=(30, 90), noise=0.6, seed=0)
        batches = lambda: ((([f"s{i}" for i in range(a, min(n, a + BATCH))]), coll.documents(a, min(n, a + BATCH)))
                           for a in range(0, n, BATCH))
        label = f"synthetic-{n // 1000}k" if n >= 1000 else f"synthetic-{n}"
        self.run(Collection(label, coll.queries(self.args.queries), None), batches, 128)

    def cranfield(self):
        ids, docs, queries, qrels = cranfield_vectors()
        if self.args.quick:
            queries, qrels = queries[:30], qrels[:30]
        self.run(Collection("cranfield", queries, qrels), lambda: [(ids, docs)], docs[0].shape[1])

    def write(self):
        header = ["collection", "method", "recall@10 vs exact", "nDCG@10", "p50 ms, 1 query/call", "x exact",
                  "ms/query batched", "x exact", "build s", "B/doc first stage", "B/doc total"]
        rows = [[r["collection"], r["method"], f"{r['recall']:.3f}", f"{r['ndcg']:.3f}" if "ndcg" in r else "",
                 f"{r['one_ms']:.1f}", f"{r['one_x']:.2f}", f"{r['batched_ms']:.1f}", f"{r['batched_x']:.2f}",
                 f"{r['build_s']:.1f}", f"{r['first_stage_bytes']:,.0f}", f"{r['total_bytes']:,.0f}"]
                for r in self.rows]
        load = ", ".join(f"{stage} {a:.1f}/{b:.1f}/{c:.1f}" for stage, (a, b, c) in self.load)
        text = (f"# MUVERA first stage vs PLAID vs exact\n\n`python bench/muvera.py {' '.join(sys.argv[1:])}`, "
                f"threads: {self.args.threads}; load average (1/5/15 min): {load}.\n\n"
                + markdown_table(header, rows) + "\n")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(text, flush=True)


def cranfield_vectors():
    """(doc ids, doc vectors, judged query vectors, their qrels), encoded once and cached."""
    from maxsim.evaluation.loaders import load_beir_folder
    queries, corpus, qrels = load_beir_folder(SHARED / "data" / "cranfield")
    qids = [q for q in queries if q in qrels]
    ids = list(corpus)
    cache = WORK / "cranfield-default-float32.npz"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        from maxsim.models.loading import load_model
        model = load_model("default", device="cpu", dtype="float32")
        docs = model.encode([f"{corpus[i]['title']} {corpus[i]['text']}".strip() for i in ids], task="document",
                            batch_size=32)
        qv = model.encode([queries[q] for q in qids], task="query", batch_size=64)
        np.savez(cache, docs=np.concatenate(docs), doc_lens=[len(d) for d in docs],
                 queries=np.concatenate(qv), query_lens=[len(q) for q in qv])
    z = np.load(cache)
    split = lambda a, lens: np.split(a, np.cumsum(lens)[:-1])
    return ids, split(z["docs"], z["doc_lens"]), split(z["queries"], z["query_lens"]), [qrels[q] for q in qids]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 synthetic documents, 30 Cranfield queries")
    p.add_argument("--docs", type=int, nargs="+", default=None, help="synthetic sizes (10000 100000)")
    p.add_argument("--queries", type=int, default=50, help="synthetic queries")
    p.add_argument("--one-at-a-time", type=int, default=30, help="queries timed one per call")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=["synthetic", "cranfield"], action="append")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                   help="MUVERA settings to build (all)")
    a = p.parse_args()
    a.docs = a.docs or ([2000] if a.quick else [10_000, 100_000])
    import faiss
    import torch
    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    bench = Bench(a)
    if "synthetic" in (a.only or ["synthetic"]):
        for n in a.docs:
            bench.synthetic(n)
    if "cranfield" in (a.only or ["cranfield"]):
        bench.cranfield()
    bench.load.append(("end", os.getloadavg()))
    bench.write()


if __name__ == "__main__":
    main()
