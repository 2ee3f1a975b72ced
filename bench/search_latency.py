"""Search latency one query per call vs batched, against the memory-bandwidth bound.

    python bench/search_latency.py [--docs 5000] [--queries 30] [--dim 384] [--plaid] [--service]

Collection: ``--docs`` synthetic documents with real lengths (the token counts of the bundled
Cranfield abstracts under the default model's 256-token limit, resampled: ~190 tokens, ~1M
vectors for 5k documents), ``--dim`` (384, the default model) unit vectors around 8,192 term
centres (noise 0.6), stored float16 in an ExactIndex; queries: 32 noisy tokens of a document.

Prints per query: ExactIndex one query per call (p50) and all queries in one call, the
memory-bandwidth bound (bytes of the index's vectors / this machine's measured memcpy rate), and
with ``--plaid`` the same for a PlaidIndex (nbits 2), with ``--service`` the p50 of one client
posting one query at a time to a real ``maxsim serve`` over a retriever holding the same vectors
(the query is encoded by the default model: its encode time is included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "bench"))  # after src: bench/maxsim.py must not shadow the package
from common import load_average, machine_line  # noqa: E402

WORK = ROOT / "bench" / "_work"


def real_lengths(n: int, rng) -> np.ndarray:
    """Token counts of ``n`` documents resampled from the bundled Cranfield abstracts (word count x 1.3
    + 2 special tokens, at most 256: the default model's document length)."""
    path = ROOT / "src" / "maxsim" / "data" / "cranfield" / "corpus.jsonl"
    words = [len(f"{d.get('title', '')} {d['text']}".split()) for d in map(json.loads, path.open(encoding="utf-8"))]
    lengths = np.minimum(np.round(np.array(words) * 1.3).astype(np.int64) + 2, 256)
    return rng.choice(lengths, n)


def collection(n_docs: int, n_queries: int, dim: int, seed: int = 0):
    """(documents as float16 arrays, float32 queries of 32 tokens)."""
    rng = np.random.default_rng(seed)
    terms = rng.standard_normal((8192, dim)).astype(np.float32)
    terms /= np.linalg.norm(terms, axis=1, keepdims=True)
    docs, doc_terms = [], []
    for n in real_lengths(n_docs, rng):
        t = rng.integers(0, len(terms), n)
        v = terms[t] + rng.standard_normal((n, dim)).astype(np.float32) * np.float32(0.6 / np.sqrt(dim))
        docs.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16))
        doc_terms.append(t)
    queries = []
    for _ in range(n_queries):
        t = rng.choice(doc_terms[int(rng.integers(0, n_docs))], 32)
        v = terms[t] + rng.standard_normal((32, dim)).astype(np.float32) * np.float32(0.6 / np.sqrt(dim))
        queries.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return docs, queries


def memcpy_rate(n_bytes: int = 1 << 29) -> float:
    """Bytes copied per second by one large ``np.copyto`` (best of 3)."""
    src = np.ones(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return n_bytes / best


def per_query(index, queries, k, **kw) -> tuple[float, float]:
    """(p50 ms one query per call, ms per query when all are passed in one call)."""
    index.search(queries[:1], k=k, **kw)  # warm-up: page cache, scan copies, allocators
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search([q], k=k, **kw)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    index.search(queries, k=k, **kw)
    return float(np.median(times)) * 1000, (time.perf_counter() - t) / len(queries) * 1000


def service_p50(docs, queries_text, port: int) -> float | None:
    """p50 ms of one client posting one query at a time to ``maxsim serve`` on a retriever of ``docs``."""
    import subprocess
    import urllib.request

    from maxsim.search.retriever import Retriever
    folder = WORK / "latency-retriever"
    shutil.rmtree(folder, ignore_errors=True)
    r = Retriever.create(folder, passages=False)
    r.add([f"document {i}" for i in range(len(docs))], embeddings=[d.astype(np.float32) for d in docs])
    del r
    proc = subprocess.Popen([sys.executable, "-m", "maxsim.cli", "serve", str(folder), "--port", str(port),
                             "--readers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        times = []
        for i, text in enumerate(queries_text):
            body = json.dumps({"queries": [text], "k": 10}).encode()
            req = urllib.request.Request(url + "/search", body, {"Content-Type": "application/json"})
            t = time.perf_counter()
            urllib.request.urlopen(req, timeout=120).read()
            if i:  # the first request warms the index copies up
                times.append(time.perf_counter() - t)
        return float(np.median(times)) * 1000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=5000)
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plaid", action="store_true", help="also a PlaidIndex nbits 2")
    p.add_argument("--service", action="store_true", help="also the p50 of `maxsim serve` for one client")
    p.add_argument("--port", type=int, default=8765)
    a = p.parse_args()
    import torch

    from maxsim.index import ExactIndex, PlaidIndex
    from maxsim.index.packed import scan_dtype
    torch.set_num_threads(a.threads)
    load = load_average()
    docs, queries = collection(a.docs, a.queries, a.dim)
    n_tokens = sum(len(d) for d in docs)
    ids = [f"d{i}" for i in range(len(docs))]
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "latency-exact", ignore_errors=True)
    exact = ExactIndex.create(WORK / "latency-exact", a.dim)
    exact.add(ids, docs)
    bound = n_tokens * a.dim * 2 / memcpy_rate() * 1000
    one, batch = per_query(exact, queries, a.k)
    rows = [("ExactIndex float16", one, batch)]
    if a.plaid:
        shutil.rmtree(WORK / "latency-plaid", ignore_errors=True)
        plaid = PlaidIndex.create(WORK / "latency-plaid", a.dim, nbits=2)
        plaid.add(ids, docs)
        rows.append(("PlaidIndex nbits 2", *per_query(plaid, queries, a.k)))
    print(f"{len(docs)} documents, {n_tokens} token vectors x {a.dim} float16 "
          f"({n_tokens * a.dim * 2 / 1e6:.0f} MB), {len(queries)} queries x 32 vectors, k={a.k}, "
          f"{a.threads} threads, scan dtype {str(scan_dtype()).replace('torch.', '')}")
    print(f"memory-bandwidth bound (index bytes / memcpy rate): {bound:.1f} ms per query\n")
    print("| index | one query per call p50 ms | batched ms/query | one/batched | one/bound |")
    print("|---|---|---|---|---|")
    for name, o, b in rows:
        print(f"| {name} | {o:.1f} | {b:.1f} | {o / b:.2f}x | {o / bound:.2f}x |")
    if a.service:
        texts = [f"query number {i} about boundary layers and heat transfer" for i in range(a.queries + 1)]
        p50 = service_p50(docs, texts, a.port)
        print(f"\nservice p50, one client, one query per request (encode + search + JSON): {p50:.1f} ms")
    print(f"\n{machine_line(load)}")
    shutil.rmtree(WORK / "latency-exact", ignore_errors=True)
    shutil.rmtree(WORK / "latency-plaid", ignore_errors=True)


if __name__ == "__main__":
    main()
