"""Growth curve of PlaidIndex (defaults: nbits 2, ranked from the codes) on one machine: 10k, 100k, 1M documents.

    python -P bench/scale.py                          # 10k, 100k, 1M (1M: ~40 min on 2 cores)
    python -P bench/scale.py --sizes 10000,100000     # the small part (~15 min)

Collection: ``maxsim.index.synthetic.ClusteredCollection`` (the generator of bench/index.py), 128-dim
unit vectors, 40-80 tokens per document (mean 60). Documents are generated and added in batches of
``--batch`` (10,000): at most one batch of float32 vectors (~30 MB) is in memory. The first batch
trains the centroids (``n_centroids`` = the automatic count for the final collection, so every size
is built like one index of that size); the other batches take the add-without-rebuild path.

Measured per size: build time (adds only; generation excluded), bytes of the index folder, search
memory and latency in a fresh process that opens the index memory-mapped (VmRSS after opening, after
the queries, and the peak VmHWM), p50/p95 latency of single queries at k=10 with the default search
settings (first pass: the queries never seen, on the freshly opened index; then warm: the same
queries again), bytes per tier, recall@10 against exact MaxSim. Exact ground truth: exhaustive MaxSim of the float32
vectors, computed batch by batch while building (each generated batch is scored against all queries
and merged into a running top-10), so it covers the whole collection without storing it.
Growth exponents: least-squares slope of log(metric) against log(documents).

Interrupted runs resume: the index folder and the exact top-10 checkpoint are kept in
bench/_work/scale/; rerunning continues after the last committed batch.
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
sys.path.append(str(ROOT / "bench"))  # after src: bench/maxsim.py must not shadow the package
from common import cpu_model  # noqa: E402

WORK = ROOT / "bench" / "_work" / "scale"
RESULTS = ROOT / "bench" / "results" / "scale.md"
DOC_TOKENS = (40, 80)


def collection(n_docs: int):
    from maxsim.index.synthetic import ClusteredCollection
    return ClusteredCollection(n_docs, dim=128, doc_tokens=DOC_TOKENS, seed=0)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------- exact ground truth
class ExactTopK:
    """Running exact top-k of each query over documents scored batch by batch (checkpointed)."""

    def __init__(self, path: Path, n_queries: int, k: int = 10):
        self.path, self.k = path, k
        if path.exists():
            z = np.load(path)
            self.ids, self.scores, self.done = z["ids"], z["scores"], int(z["done"])
        else:
            self.ids = np.full((n_queries, k), -1, dtype=np.int64)
            self.scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
            self.done = 0

    def update(self, queries, docs, start: int) -> None:
        from maxsim.index.packed import maxsim_packed
        lens = np.array([len(d) for d in docs])
        scores = np.zeros((len(queries), len(docs)), dtype=np.float32)
        step = 2000  # documents per GEMM: ~120k tokens x (n_queries * 32) scores
        for s in range(0, len(docs), step):
            scores[:, s: s + step] = maxsim_packed(queries, np.concatenate(docs[s: s + step]), lens[s: s + step])
        ids = np.concatenate([self.ids, np.broadcast_to(np.arange(start, start + len(docs)), scores.shape)], axis=1)
        allsc = np.concatenate([self.scores, scores], axis=1)
        order = _rowwise_top(allsc, ids, self.k)
        self.ids = np.take_along_axis(ids, order, 1)
        self.scores = np.take_along_axis(allsc, order, 1)
        self.done = start + len(docs)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=self.ids, scores=self.scores, done=self.done)
        os.replace(tmp, self.path)


def _rowwise_top(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Per row, positions of the k best scores (ties: lower id), best first."""
    return np.stack([np.lexsort((i, -s))[:k] for s, i in zip(scores, ids)])


# ---------------------------------------------------------------------- build
def build(n_docs: int, args) -> dict:
    from maxsim.index import PlaidIndex
    from maxsim.index.centroids import auto_n_centroids
    coll = collection(n_docs)
    folder, ckpt = WORK / f"plaid2-{n_docs}", WORK / f"exact-{n_docs}.npz"
    queries = coll.queries(args.queries)
    info_path = WORK / f"build-{n_docs}.json"
    info = json.loads(info_path.read_text()) if info_path.exists() and folder.exists() else None
    if info is None:
        shutil.rmtree(folder, ignore_errors=True)
        ckpt.unlink(missing_ok=True)
        n_c = auto_n_centroids(int(coll.doc_len.sum()))
        PlaidIndex.create(folder, 128, n_centroids=n_c)
        info = {"docs": n_docs, "tokens": int(coll.doc_len.sum()), "n_centroids": n_c,
                "build_s": 0.0, "generate_s": 0.0, "exact_s": 0.0, "load": []}
    index = PlaidIndex.open(folder)
    truth = ExactTopK(ckpt, len(queries))
    start = min(len(index), truth.done)
    for s in range(start, start if args.measure_only else n_docs, args.batch):
        stop = min(n_docs, s + args.batch)
        t = time.perf_counter()
        docs = coll.documents(s, stop)
        info["generate_s"] += time.perf_counter() - t
        if truth.done < stop:
            t = time.perf_counter()
            truth.update(queries, docs, s)
            info["exact_s"] += time.perf_counter() - t
        if len(index) < stop:
            t, cpu = time.perf_counter(), time.process_time()
            index.add([f"s{i}" for i in range(s, stop)], docs)
            info["build_s"] += time.perf_counter() - t
            info["build_cpu_s"] = info.get("build_cpu_s", 0.0) + time.process_time() - cpu
        info_path.write_text(json.dumps(info))
        print(f"{n_docs}: {stop} documents, build {info['build_s']:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    info["load"].append(os.getloadavg())
    if len(index) != truth.done:
        raise RuntimeError(f"{folder}: {len(index)} documents indexed but exact top-10 over {truth.done}; "
                           "rerun the build.")
    info["target_docs"], info["docs"] = n_docs, len(index)  # fewer when --measure-only stops a build early
    info["tokens"] = int(coll.doc_len[: len(index)].sum())
    info["bytes"] = folder_bytes(folder)
    info_path.write_text(json.dumps(info))
    return info


# ---------------------------------------------------------------------- search (fresh process)
def search_child(n_docs: int, args) -> None:
    """Open the index memory-mapped, time single queries, print memory and hits as JSON."""
    import torch

    from maxsim.index import PlaidIndex
    torch.set_num_threads(args.threads)
    queries = collection(n_docs).queries(args.queries)
    rss0 = status_kib("VmRSS")
    t = time.perf_counter()
    index = PlaidIndex.open(WORK / f"plaid2-{n_docs}")
    open_s = time.perf_counter() - t
    rss_open = status_kib("VmRSS")
    passes = []
    for _ in range(2):  # first pass (never-seen queries, freshly opened index), then warm
        times, hits = [], []
        for q in queries:
            t = time.perf_counter()
            res = index.search([q], k=10)[0]
            times.append(time.perf_counter() - t)
            hits.append([int(i[1:]) for i, _ in res])
        passes.append(times)
    print("RESULT " + json.dumps({"open_s": open_s, "rss_start_kib": rss0, "rss_open_kib": rss_open,
                                  "rss_search_kib": status_kib("VmRSS"), "hwm_kib": status_kib("VmHWM"),
                                  "first": passes[0], "times": times, "hits": hits,
                                  "tiers": index.tier_bytes()}))


def measure(n_docs: int, args) -> dict:
    cmd = [sys.executable, "-P", __file__, "--child", str(n_docs), "--queries", str(args.queries),
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"search process failed: {proc.stderr[-2000:]}")
    out = json.loads(line[len("RESULT "):])
    truth = ExactTopK(WORK / f"exact-{n_docs}.npz", args.queries).ids
    out["recall"] = float(np.mean([len(set(h) & set(t.tolist())) / 10 for h, t in zip(out["hits"], truth)]))
    out["p50_ms"] = float(np.percentile(out["times"], 50) * 1000)
    out["p95_ms"] = float(np.percentile(out["times"], 95) * 1000)
    out["first_p50_ms"] = float(np.percentile(out["first"], 50) * 1000)
    out["load"] = os.getloadavg()
    del out["hits"], out["times"], out["first"]
    return out


# ---------------------------------------------------------------------- report
METRICS = [("build_s", "build (s)"), ("bytes", "bytes on disk"), ("rss_search_kib", "search RSS (KiB)"),
           ("p50_ms", "p50 latency (ms)")]


def growth_exponent(xs, ys) -> float:
    """Slope of log y against log x (least squares): y ~ x^slope."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def report(rows: list[dict], args) -> str:
    lines = ["# Growth curve (`bench/scale.py`)", "",
             f"Run finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `python -P bench/scale.py "
             f"--sizes {','.join(str(r['docs']) for r in rows)}` (sizes may run in parallel processes, "
             f"each writing its row); torch/faiss at {args.threads} thread(s), "
             f"{args.queries} single queries, k = 10, PlaidIndex defaults (nbits 2, no float16 copy). "
             f"{cpu_model()}, {os.cpu_count()} cores; the load average of each size's run is in the table.", "",
             "| documents | tokens | centroids | build (s) | docs/s | bytes on disk | bytes/token | open (s) "
             "| RSS open / after search / peak (MiB) | p50 ms first pass / warm | p95 ms | recall@10 | load (1/5/15) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mib = lambda kib: f"{kib / 1024:.0f}"
        stopped = r.get("target_docs", r["docs"]) != r["docs"]
        partial = f" (build of {r['target_docs']:,} stopped here)" if stopped else ""
        lines.append(
            f"| {r['docs']:,}{partial} | {r['tokens']:,} | {r['n_centroids']} | {r['build_s']:.0f} | "
            f"{r['docs'] / r['build_s']:.0f} | {r['bytes'] / 2**20:.0f} MiB | {r['bytes'] / r['tokens']:.1f} | "
            f"{r['open_s']:.1f} | {mib(r['rss_open_kib'])} / {mib(r['rss_search_kib'])} / {mib(r['hwm_kib'])} | "
            f"{r.get('first_p50_ms', float('nan')):.1f} / {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['recall']:.3f} | "
            + "/".join(f"{v:.1f}" for v in r["load"]) + " |")
    if len(rows) >= 2:
        xs = [r["docs"] for r in rows]
        lines += ["", "Growth exponents (y ~ documents^e, least squares over the sizes above): "
                  + ", ".join(f"{name} e = {growth_exponent(xs, [r[key] for r in rows]):.2f}" for key, name in METRICS)
                  + "."]
    lines += ["", "Bytes per token by tier (on disk; the inverted file in memory): "
              + "; ".join(f"{r['docs']:,}: " + ", ".join(f"{k} {v / r['tokens']:.2f}" for k, v in r["tiers"].items())
                          for r in rows if "tiers" in r) + "."]
    lines += ["", "Exact top-10: exhaustive MaxSim of the float32 vectors, scored batch by batch while building "
              "(time not counted in build): " + ", ".join(f"{r['docs']:,}: {r['exact_s']:.0f} s" for r in rows)
              + ". Generating the vectors (not counted): "
              + ", ".join(f"{r['docs']:,}: {r['generate_s']:.0f} s" for r in rows) + "."]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--measure-only", action="store_true",
                   help="measure the index as built so far (a build stopped early) without adding more")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    import faiss
    import torch
    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    if a.child is not None:
        return search_child(a.child, a)
    WORK.mkdir(parents=True, exist_ok=True)
    for n in [int(x) for x in a.sizes.split(",")]:
        row = {**build(n, a), **measure(n, a)}
        (WORK / f"row-{n}.json").write_text(json.dumps(row))
        print(json.dumps(row), flush=True)
        # every size measured so far (other processes may run other sizes at the same time)
        rows = sorted((json.loads(f.read_text()) for f in WORK.glob("row-*.json")), key=lambda r: r["docs"])
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report(rows, a))
        print(report(rows, a))


if __name__ == "__main__":
    main()
