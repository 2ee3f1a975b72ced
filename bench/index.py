"""Index benchmark: ExactIndex, PlaidIndex (nbits 2 and 4) and fast-plaid, in one run.

    python bench/index.py            # full run (~30 min on 2 cores)
    python bench/index.py --quick    # small run (~3 min)

Collections
- ``synthetic``: ``maxsim.index.synthetic.ClusteredCollection`` (128-dim unit vectors around 4,096
  term centres, topics of 64 terms, 60-140 tokens per document (mean 100), token noise 0.35;
  queries: 32 noisy tokens of a random document's terms), ``--docs`` documents (100,000) added in
  batches of 10,000 (the first trains the centroids, the others use the add-without-rebuild path).
- ``synthetic-10k``: its first ``--subset`` documents (10,000) in one add; fast-plaid runs here
  (fast-plaid's CPU build of 100,000 documents takes hours on 2 cores).
- ``cranfield``: tests/fixtures/data/cranfield encoded with ``MultiVectorEncoder.default()`` (cached in
  bench/_work/), 225 queries (30 with ``--quick``).
- ``synthetic-20k-noise0.6`` (``--only 20k``): 20,000 documents, 2,000 topic centres, token noise
  0.6, 30-90 tokens (many topics, heavy noise).

Per index: build time, bytes per token on disk (all files; for PLAID also its compressed tier and
its float16 re-scoring copy apart), p50/p95 latency of single queries (torch / faiss / fast-plaid
at ``--threads`` threads), recall@10 against ExactIndex; PLAID nbits 2 vs exact at k = 10 and 100,
all queries in one call and one per call; on the fast-plaid collections a like-for-like table
(fast-plaid nbits 2 and 4 built with maxsim's centroid count and k-means sample, searched on the
same queries at maxsim's resolved settings); a sweep of search settings gives
bench/index_recall_latency.png (needs matplotlib, the ``plots`` extra; skipped without it).
Results: bench/results/index.md (written by bench/index_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "bench"))  # after src/: bench/maxsim.py must not shadow the package
from index_report import plot, write_report  # noqa: E402

SHARED = ROOT / "tests" / "fixtures"  # models/, data/ (copied from ../shared; see tests/README.md)
WORK = ROOT / "bench" / "_work"
RESULTS = ROOT / "bench" / "results" / "index.md"
PLOT = ROOT / "bench" / "index_recall_latency.png"
# fast-plaid 1.7.0.2110 pins torch==2.11.0, so it runs in its own virtual environment:
#   python -m venv bench/_work/fpenv && bench/_work/fpenv/bin/pip install fast-plaid==1.7.0.2110
FASTPLAID_PYTHON = os.environ.get("FASTPLAID_PYTHON", str(WORK / "fpenv" / "bin" / "python"))



def folder_bytes(folder: Path, tier: str = "all") -> int:
    """Bytes of the index folder: all files, or only the PLAID float16 re-scoring copies
    (``tier="rescore"``: the ``*-vectors.npy`` files), or all but those (``"compressed"``)."""
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    if tier != "all":
        files = [p for p in files if p.name.endswith("-vectors.npy") == (tier == "rescore")]
    return sum(p.stat().st_size for p in files)


def per_query_times(index, queries, k, one_at_a_time: int):
    """(hits of all queries in one call, ms per query of that call, p50 ms of the first
    ``one_at_a_time`` queries searched one per call)."""
    index.search(queries[:1], k=k)  # warm-up
    t = time.perf_counter()
    hits = [[i for i, _ in r] for r in index.search(queries, k=k)]
    batched = (time.perf_counter() - t) / len(queries) * 1000
    times = []
    for q in queries[:one_at_a_time]:
        t = time.perf_counter()
        index.search([q], k=k)
        times.append(time.perf_counter() - t)
    return hits, batched, pct(times, 50)


def pct(times, p):
    return float(np.percentile(np.asarray(times) * 1000, p))


def recall_at(hits, truth, k=10):
    return float(np.mean([len(set(h[:k]) & set(t[:k])) / k for h, t in zip(hits, truth)]))


def timed_queries(index, queries, **kw):
    index.search([queries[0]], k=10, **kw)  # warm-up (page cache, allocators)
    times, hits = [], []
    for q in queries:
        t = time.perf_counter()
        res = index.search([q], k=10, **kw)[0]
        times.append(time.perf_counter() - t)
        hits.append([i for i, _ in res])
    return times, hits


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows: list[dict] = []
        self.sweeps: list[dict] = []
        self.matched: list[dict] = []  # maxsim and fast-plaid at the same search settings
        self.k_rows: list[dict] = []  # PLAID vs exact at k = 10 and 100, batched and one query per call
        self.notes: list[str] = []
        self.load: list[tuple[str, tuple]] = [("start", os.getloadavg())]
        WORK.mkdir(parents=True, exist_ok=True)
        previous = WORK / "index-results.json"
        if args.append and previous.exists():  # continue the report of an earlier (partial) run
            old = json.loads(previous.read_text())
            self.rows, self.sweeps, self.notes = old["rows"], old["sweeps"], old["notes"]
            self.matched, self.k_rows = old.get("matched", []), old.get("k_rows", [])
            self.load = [tuple(x) for x in old.get("load", [])] + [("restart", os.getloadavg())]

    # ---------------------------------------------------------------- our indexes
    def build(self, kind, folder, dim, batches, **params):
        from maxsim.index import ExactIndex, PlaidIndex
        cls = ExactIndex if kind == "exact" else PlaidIndex
        shutil.rmtree(folder, ignore_errors=True)
        index = cls.create(folder, dim, **params)
        total = 0.0
        for ids, embs in batches():
            t = time.perf_counter()
            index.add(ids, embs)
            total += time.perf_counter() - t
        return index, total

    def measure(self, collection, name, index, build_s, queries, truth, n_latency=None, **kw):
        lat_q = queries if n_latency is None else queries[:n_latency]
        times, hits = timed_queries(index, lat_q, **kw)
        if n_latency is not None and len(lat_q) < len(queries):
            hits = [[i for i, _ in r] for r in index.search(queries, k=10, **kw)]
        stats = index.stats()
        row = {"collection": collection, "index": name, "build_s": build_s,
               "bytes_per_token": folder_bytes(index.folder) / max(stats["tokens"], 1),
               "compressed_bytes_per_token": folder_bytes(index.folder, "compressed") / max(stats["tokens"], 1),
               "rescore_bytes_per_token": folder_bytes(index.folder, "rescore") / max(stats["tokens"], 1),
               "p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "latency_queries": len(lat_q),
               "recall": recall_at(hits, truth) if truth is not None else 1.0}
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.save()
        return hits

    def sweep(self, collection, name, index, queries, truth, grid):
        for setting in grid:
            times, hits = timed_queries(index, queries, **setting)
            point = {"collection": collection, "index": name, "setting": setting, "p50_ms": pct(times, 50),
                     "recall": recall_at(hits, truth)}
            self.sweeps.append(point)
            print(json.dumps(point), flush=True)
        self.save()

    # ---------------------------------------------------------------- fast-plaid
    def fastplaid(self, collection, docs, queries, truth_ids, id_list, nbits, settings, n_centroids=None):
        if self.args.skip_fastplaid or not Path(FASTPLAID_PYTHON).exists():
            self.notes.append(f"fast-plaid skipped on {collection} ({FASTPLAID_PYTHON} missing or --skip-fastplaid).")
            return
        stem = WORK / f"fp-{collection}"
        np.save(f"{stem}-docs.npy", np.concatenate(docs).astype(np.float16))
        np.save(f"{stem}-lens.npy", np.array([len(d) for d in docs]))
        np.save(f"{stem}-queries.npy", np.concatenate(queries).astype(np.float32))
        np.save(f"{stem}-qlens.npy", np.array([len(q) for q in queries]))
        folder = WORK / f"fp-{collection}-index"
        shutil.rmtree(folder, ignore_errors=True)
        job = {"docs": f"{stem}-docs.npy", "lens": f"{stem}-lens.npy", "queries": f"{stem}-queries.npy",
               "qlens": f"{stem}-qlens.npy", "folder": str(folder), "nbits": nbits,
               "threads": self.args.threads, "settings": settings, "n_centroids": n_centroids,
               # maxsim's k-means sample: n_centroids * 32 token vectors drawn from all documents, 4 iterations
               "create": {"kmeans_niters": 4, "max_points_per_centroid": 32, "n_samples_kmeans": len(docs)}
               if n_centroids else {}}
        proc = subprocess.run([FASTPLAID_PYTHON, str(ROOT / "bench" / "fastplaid_runner.py"), json.dumps(job)],
                              capture_output=True, text=True, timeout=self.args.fp_timeout)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            self.notes.append(f"fast-plaid failed on {collection}: {proc.stderr[-500:]}")
            print(proc.stderr[-2000:], flush=True)
            return
        out = json.loads(line[len("RESULT "):])
        for i, s in enumerate(out["settings"]):
            hits = [[id_list[j] for j in h] for h in s["hits"]]
            rec = recall_at(hits, truth_ids)
            name = f"fast-plaid nbits {nbits}" + (" (maxsim's k-means)" if n_centroids else "")
            if i == 0:
                row = {"collection": collection, "index": name + " (its search defaults)", "build_s": out["build_s"],
                       "bytes_per_token": out["bytes"] / out["tokens"], "p50_ms": pct(s["times"], 50),
                       "p95_ms": pct(s["times"], 95), "latency_queries": len(s["times"]), "recall": rec}
                self.rows.append(row)
                print(json.dumps(row), flush=True)
            if s["setting"]:
                self.matched.append({"collection": collection, "index": name, "setting": s["setting"],
                                     "p50_ms": pct(s["times"], 50), "recall": rec, "build_s": out["build_s"]})
            self.sweeps.append({"collection": collection, "index": name, "setting": s["setting"],
                                "p50_ms": pct(s["times"], 50), "recall": rec})
        shutil.rmtree(folder, ignore_errors=True)
        for suffix in ("docs", "lens", "queries", "qlens"):
            Path(f"{stem}-{suffix}.npy").unlink(missing_ok=True)
        self.save()

    # ---------------------------------------------------------------- collections
    def synthetic_subset(self):
        from maxsim.index.synthetic import ClusteredCollection
        a = self.args
        coll = ClusteredCollection(a.docs, dim=128, seed=0)
        n = a.subset
        docs = coll.documents(0, n)
        ids = [f"s{i}" for i in range(n)]
        queries = coll.queries(a.queries, max_doc=n)
        name = f"synthetic-{n // 1000}k" if n >= 1000 else f"synthetic-{n}"
        self.run_collection(name, docs, ids, queries, dim=128, fp=True)

    def cranfield(self):
        docs, queries = self.cranfield_vectors()
        ids = [f"c{i}" for i in range(len(docs))]
        if self.args.quick:
            queries = queries[:30]
        self.run_collection("cranfield", docs, ids, queries, dim=docs[0].shape[1], fp=True)

    def cranfield_vectors(self):
        cache = WORK / "cranfield-default-model.npz"
        if cache.exists():
            z = np.load(cache)
            split = lambda a, lens: np.split(a.astype(np.float32), np.cumsum(lens)[:-1])
            return split(z["docs"], z["doc_lens"]), split(z["queries"], z["query_lens"])
        from maxsim import MultiVectorEncoder
        folder = SHARED / "data" / "cranfield"
        corpus = [json.loads(x) for x in open(folder / "corpus.jsonl", encoding="utf-8") if x.strip()]
        texts = [f"{d.get('title', '')} {d['text']}".strip() for d in corpus]
        qtexts = [json.loads(x)["text"] for x in open(folder / "queries.jsonl", encoding="utf-8") if x.strip()]
        model = MultiVectorEncoder.default(device="cpu")
        t = time.perf_counter()
        docs = model.encode(texts, task="document", batch_size=32)
        queries = model.encode(qtexts, task="query", batch_size=64)
        self.notes.append(f"Cranfield encoded with the default model in {time.perf_counter() - t:.0f} s "
                          f"(cached in {cache.relative_to(ROOT)}).")
        np.savez(cache, docs=np.concatenate(docs).astype(np.float16), doc_lens=[len(d) for d in docs],
                 queries=np.concatenate(queries).astype(np.float16), query_lens=[len(q) for q in queries])
        return docs, queries

    def run_collection(self, name, docs, ids, queries, dim, fp):
        a = self.args
        batches = lambda: [(ids, docs)]
        exact, t = self.build("exact", WORK / f"{name}-exact", dim, batches)
        truth = self.measure(name, "ExactIndex float16", exact, t, queries, None)
        plaids = {}
        for nbits in (2, 4):
            index, t = self.build("plaid", WORK / f"{name}-plaid{nbits}", dim, batches, nbits=nbits)
            self.measure(name, f"PlaidIndex nbits {nbits} (defaults)", index, t, queries, truth)
            plaids[nbits] = index
        self.k_table(name, exact, plaids[2], queries)
        for nbits, index in plaids.items():
            self.sweep(name, f"PlaidIndex nbits {nbits}", index, queries, truth,
                       SWEEP if (a.sweep or ("short" if a.quick else "full")) == "full" else SWEEP_QUICK)
        if fp and len(docs) <= a.fp_docs:
            self.like_for_like(name, docs, ids, queries, truth, plaids)
        elif fp:
            self.notes.append(f"fast-plaid not run on {name} ({len(docs)} documents > --fp-docs {a.fp_docs}).")
        for index in [exact, *plaids.values()]:
            shutil.rmtree(index.folder, ignore_errors=True)
        self.load.append((name, os.getloadavg()))

    def k_table(self, name, exact, plaid, queries):
        """PLAID nbits 2 against exact at k = 10 and 100: all queries in one call and one per call."""
        for k in (10, 100):
            truth, ex_b, ex_1 = per_query_times(exact, queries, k, self.args.one_at_a_time)
            hits, pl_b, pl_1 = per_query_times(plaid, queries, k, self.args.one_at_a_time)
            row = {"collection": name, "k": k, "exact_batched_ms": ex_b, "exact_one_ms": ex_1,
                   "plaid_batched_ms": pl_b, "plaid_one_ms": pl_1, "recall": recall_at(hits, truth)}
            self.k_rows.append(row)
            print(json.dumps(row), flush=True)

    def like_for_like(self, name, docs, ids, queries, truth, plaids):
        """fast-plaid nbits 2 and 4 built with maxsim's centroid count and k-means sample, searched at its
        defaults and at maxsim's resolved settings; maxsim at those settings on the same queries."""
        from maxsim.index.plaid import resolve_search_params
        plaid = plaids[2]
        resolved = resolve_search_params(len(plaid), 10, plaid.params, True)
        setting = {key: resolved[key] for key in ("n_ivf_probe", "n_full_scores")}
        n_c = int(plaid._body["state"]["n_centroids"])
        for nbits, index in plaids.items():
            times, hits = timed_queries(index, queries, **setting)
            build = next(r["build_s"] for r in self.rows if r["collection"] == name
                         and r["index"] == f"PlaidIndex nbits {nbits} (defaults)")
            self.matched.append({"collection": name, "index": f"PlaidIndex nbits {nbits}", "setting": setting,
                                 "p50_ms": pct(times, 50), "recall": recall_at(hits, truth), "build_s": build})
        for nbits in (2, 4):
            self.fastplaid(name, docs, queries, truth, ids, nbits, [{}, setting], n_centroids=n_c)

    def synthetic_20k(self):
        """The noisy set: 2,000 topic centres, token noise 0.6, 30-90 tokens per document."""
        from maxsim.index.synthetic import ClusteredCollection
        a = self.args
        n = 20_000 if not a.quick else 2_000
        coll = ClusteredCollection(n, dim=128, n_topics=2000, doc_tokens=(30, 90), noise=0.6, seed=0)
        self.run_collection(f"synthetic-{n // 1000}k-noise0.6", coll.documents(), [f"s{i}" for i in range(n)],
                            coll.queries(a.queries), dim=128, fp=False)

    def synthetic_large(self):
        from maxsim.index.synthetic import ClusteredCollection
        a = self.args
        coll = ClusteredCollection(a.docs, dim=128, seed=0)
        step = 10_000 if not a.quick else max(1, a.docs // 4)
        queries = coll.queries(a.queries)
        builds = {}
        names = {"exact": ("exact", {}), "plaid2": ("plaid", {"nbits": 2}), "plaid4": ("plaid", {"nbits": 4})}
        from maxsim.index import ExactIndex, PlaidIndex
        indexes = {}
        for key, (kind, params) in names.items():
            shutil.rmtree(WORK / f"large-{key}", ignore_errors=True)
            indexes[key] = (ExactIndex if kind == "exact" else PlaidIndex).create(WORK / f"large-{key}", 128, **params)
            builds[key] = 0.0
        gen = 0.0
        for s in range(0, a.docs, step):
            t = time.perf_counter()
            docs = coll.documents(s, min(a.docs, s + step))
            gen += time.perf_counter() - t
            ids = [f"s{i}" for i in range(s, s + len(docs))]
            for key, index in indexes.items():
                t = time.perf_counter()
                index.add(ids, docs)
                builds[key] += time.perf_counter() - t
            print(f"large: {s + len(docs)} documents added", flush=True)
        name = f"synthetic-{a.docs // 1000}k"
        self.notes.append(f"{name}: generating the vectors took {gen:.0f} s (not counted in build times); "
                          f"documents added in batches of {step}.")
        t = time.perf_counter()
        truth = [[i for i, _ in r] for r in indexes["exact"].search(queries, k=10)]
        self.notes.append(f"{name}: exact top-10 of {len(queries)} queries as one batch: "
                          f"{(time.perf_counter() - t) / len(queries) * 1000:.0f} ms per query.")
        self.measure(name, "ExactIndex float16", indexes["exact"], builds["exact"], queries, truth,
                     n_latency=min(len(queries), a.exact_latency_queries))
        for nbits in (2, 4):
            self.measure(name, f"PlaidIndex nbits {nbits} (defaults)", indexes[f"plaid{nbits}"],
                         builds[f"plaid{nbits}"], queries, truth)
            self.sweep(name, f"PlaidIndex nbits {nbits}", indexes[f"plaid{nbits}"], queries, truth,
                       SWEEP_QUICK)
        for index in indexes.values():
            shutil.rmtree(index.folder, ignore_errors=True)
        self.load.append((name, os.getloadavg()))

    # ---------------------------------------------------------------- output
    def save(self):
        results = {"rows": self.rows, "sweeps": self.sweeps, "notes": self.notes, "load": self.load,
                   "matched": self.matched, "k_rows": self.k_rows}
        (WORK / "index-results.json").write_text(json.dumps(results, indent=1))
        write_report(results, RESULTS, PLOT, self.args.quick, self.args.threads)



SWEEP = [{"n_ivf_probe": p, "n_full_scores": f} for p in (1, 2, 4, 8) for f in (32, 64, 128, 256, 512)]
SWEEP_QUICK = [{"n_ivf_probe": p, "n_full_scores": f} for p, f in ((1, 32), (2, 64), (4, 128), (4, 256), (8, 512))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small collections (a few minutes)")
    p.add_argument("--docs", type=int, default=None, help="synthetic collection size (100,000)")
    p.add_argument("--subset", type=int, default=None, help="synthetic subset for fast-plaid (10,000)")
    p.add_argument("--fp-docs", type=int, default=None, help="largest collection fast-plaid runs on")
    p.add_argument("--queries", type=int, default=None, help="synthetic queries (50)")
    p.add_argument("--exact-latency-queries", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one-at-a-time", type=int, default=30, help="queries timed one per call in the k table")
    p.add_argument("--fp-timeout", type=int, default=3000)
    p.add_argument("--skip-fastplaid", action="store_true")
    p.add_argument("--append", action="store_true", help="add to bench/_work/index-results.json")
    p.add_argument("--sweep", choices=["full", "short"], default=None,
                   help="search-settings grid (default: full, short with --quick)")
    p.add_argument("--only", choices=["subset", "cranfield", "20k", "large"], action="append")
    a = p.parse_args()
    a.docs = a.docs or (4000 if a.quick else 100_000)
    a.subset = a.subset or (1000 if a.quick else 10_000)
    a.fp_docs = a.fp_docs or a.subset
    a.queries = a.queries or (20 if a.quick else 50)
    import faiss
    import torch
    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    bench = Bench(a)
    stages = a.only or ["subset", "cranfield", "20k", "large"]
    if "subset" in stages:
        bench.synthetic_subset()
    if "cranfield" in stages:
        bench.cranfield()
    if "20k" in stages:
        bench.synthetic_20k()
    if "large" in stages:
        bench.synthetic_large()
    bench.load.append(("end", os.getloadavg()))
    bench.save()
    plot(bench.rows, bench.sweeps, PLOT)
    print(f"wrote {RESULTS} and {PLOT}")


if __name__ == "__main__":
    main()
