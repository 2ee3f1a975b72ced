"""Latencies of bench/index.py, measured in a fresh process: first pass and warm pass.

``measure(folders, queries, ...)`` starts ``python bench/index_timing.py JOB``, which opens each
index and warms it (``Index.warm``, what ``maxsim serve`` does; both times are reported apart),
then, per index and k, times the **first pass** (every query once, one per call, never seen by
this process, on the freshly opened and warmed index), the **warm pass** (the same queries
again), and all queries in **one call** (ms per query). Returns per index and k the times (ms)
and the hits of the warm pass (ids, best first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The timed process imports from compiled bytecode, as an installed package does (a shell that sets
# PYTHONDONTWRITEBYTECODE would otherwise make every first pass compile the modules it imports).
INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(folders: dict[str, Path], queries: list[np.ndarray], ks=(10,), threads: int = 2,
            settings: dict | None = None, batched: bool = True) -> dict:
    """{index name: {k: {"first_ms", "warm_ms", "first_p50", "warm_p50", "batched_ms", "hits"}, "open_s"}}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "queries.npz"
        np.savez(path, *queries)
        job = {"folders": {k: str(v) for k, v in folders.items()}, "queries": str(path), "ks": list(ks),
               "threads": threads, "settings": settings or {}, "batched": batched}
        proc = subprocess.run([sys.executable, __file__, json.dumps(job)], capture_output=True, text=True,
                              env=INSTALLED)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"timing process failed: {proc.stderr[-3000:]}")
    out = json.loads(line[len("RESULT "):])
    return {name: {**{int(k): v for k, v in res.items() if not k.endswith("_s")},
                   "open_s": res["open_s"], "warm_up_s": res["warm_up_s"]} for name, res in out.items()}


def _pass(index, queries, k, settings):
    times, hits = [], []
    for q in queries:
        t = time.perf_counter()
        res = index.search([q], k=k, **settings)[0]
        times.append(time.perf_counter() - t)
        hits.append([i for i, _ in res])
    return np.asarray(times) * 1000, hits


def _child(job: dict) -> None:
    import faiss
    import torch
    torch.set_num_threads(job["threads"])
    faiss.omp_set_num_threads(job["threads"])
    sys.path.insert(0, str(ROOT / "src"))
    from maxsim.index import open_index
    with np.load(job["queries"]) as z:
        queries = [z[f"arr_{i}"] for i in range(len(z.files))]
    out = {}
    for name, folder in job["folders"].items():
        t = time.perf_counter()
        index = open_index(folder)
        res = {"open_s": time.perf_counter() - t}
        t = time.perf_counter()
        index.warm()  # what a serving process does after opening (maxsim serve: one warm-up search)
        res["warm_up_s"] = time.perf_counter() - t
        settings = job["settings"] if index.kind == "plaid" else {}
        for k in job["ks"]:
            first, _ = _pass(index, queries, k, settings)
            warm, hits = _pass(index, queries, k, settings)
            row = {"first_ms": first.mean(), "warm_ms": warm.mean(), "first_p50": float(np.median(first)),
                   "warm_p50": float(np.median(warm)), "first_query_ms": float(first[0]), "hits": hits}
            if job["batched"]:
                t = time.perf_counter()
                index.search(queries, k=k, **settings)
                row["batched_ms"] = (time.perf_counter() - t) / len(queries) * 1000
            res[k] = {key: float(v) if isinstance(v, np.floating) else v for key, v in row.items()}
        out[name] = res
        del index
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
