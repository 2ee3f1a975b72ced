"""How PlaidIndex's search defaults were derived: fitted on some collections, checked on others.

For each collection, a PLAID index (nbits 2, defaults) and the exhaustive ranking from its codes
(every document scored: what the codes can do at best); then a grid of search settings
(``n_ivf_probe`` x ``n_full_scores``, k = 10 and 100), each measured by its *faithfulness*
(share of the exhaustive ranking's top k it returns: what the search loses on top of the codec),
its recall against exact search, and its latency (one query per call, warm).
Fit: Cranfield's even-numbered queries, the 5k noise-0.6 synthetic set, the nq KD sample; for each
k, the smallest ``n_full_scores`` and ``n_ivf_probe`` reaching faithfulness 0.99 on all of them.
Held out: Cranfield's odd-numbered queries, the msmarco KD sample, synthetic sets of other sizes and
noise (2k noise 0.35, 20k noise 0.6): the fitted rule (``maxsim.index.defaults``) is reported there.

``crossover``: where PLAID starts beating the exact scan (``choose_kind``): collections with
Cranfield's document lengths at 384 dims (``bench/search_latency.py``'s generator) of growing size;
per size, exact and PLAID (defaults) at k = 10 and 100, one query per call and all in one call, ms
per query (median of interleaved rounds, warm).
"""

from __future__ import annotations

import shutil
import time

import numpy as np

import index_data
from index import EXHAUSTIVE, build, recall_at, synthetic

GRID = {10: (32, 64, 128, 256), 100: (200, 300, 400, 600)}
PROBES = (1, 2, 4)
TARGET = 0.99


def collections(quick: bool):
    """(name, role, docs, ids, queries) of the fit and held-out collections."""
    cran = index_data.load("cranfield")
    n_q = 20 if quick else 100
    for name, role, n, noise in (("synthetic-5k-noise0.6", "fit", 5000, 0.6),
                                 ("synthetic-2k-noise0.35", "held-out", 2000, 0.35),
                                 ("synthetic-20k-noise0.6", "held-out", 20000, 0.6)):
        n = n // 4 if quick else n
        docs, ids, queries = synthetic(n, n_q, noise=noise, seed=11)
        yield name, role, docs, ids, queries
    qs = cran.queries[: 2 * n_q]
    yield "cranfield-even", "fit", cran.docs, cran.ids, qs[0::2]
    yield "cranfield-odd", "held-out", cran.docs, cran.ids, qs[1::2]
    for name, role in (("nq-kd", "fit"), ("msmarco-kd", "held-out")):
        coll = index_data.load(name)
        yield name, role, coll.docs, coll.ids, coll.queries


def _hits(index, queries, k, **settings):
    t = time.perf_counter()
    hits = [[i for i, _ in index.search([q], k=k, **settings)[0]] for q in queries]
    return hits, (time.perf_counter() - t) / len(queries) * 1000


def grid(name, role, docs, ids, queries) -> list[dict]:
    exact, _ = build("exact", "exact", docs, ids)
    plaid, _ = build("plaid", "plaid", docs, ids)
    rows = []
    for k in (10, 100):
        truth = [[i for i, _ in h] for h in exact.search(queries, k=k)]
        full = [[i for i, _ in h] for h in plaid.search(queries, k=k, **EXHAUSTIVE)]
        default, ms = _hits(plaid, queries[:2], k)
        default, ms = _hits(plaid, queries, k)
        base = {"collection": name, "role": role, "k": k, "documents": len(docs),
                "exhaustive_recall": recall_at(full, truth, k)}
        rows.append({**base, "setting": "defaults", "faith": recall_at(default, full, k),
                     "recall": recall_at(default, truth, k), "ms": ms})
        for probe in PROBES:
            for n_full in GRID[k]:
                hits, ms = _hits(plaid, queries, k, n_ivf_probe=probe, n_full_scores=n_full)
                rows.append({**base, "setting": {"n_ivf_probe": probe, "n_full_scores": n_full},
                             "faith": recall_at(hits, full, k), "recall": recall_at(hits, truth, k), "ms": ms})
    for index in (exact, plaid):
        shutil.rmtree(index.folder, ignore_errors=True)
    return rows


def fitted(rows: list[dict]) -> list[dict]:
    """Per k: the smallest (n_full_scores, then n_ivf_probe) reaching TARGET on every fit collection."""
    out = []
    for k in (10, 100):
        fit = [r for r in rows if r["role"] == "fit" and r["k"] == k and r["setting"] != "defaults"]
        names = {r["collection"] for r in fit}
        for n_full in GRID[k]:
            runs = {p: [r for r in fit if r["setting"] == {"n_ivf_probe": p, "n_full_scores": n_full}] for p in PROBES}
            ok = [p for p in PROBES if all(r["faith"] >= TARGET for r in runs[p]) and len(runs[p]) == len(names)]
            if ok:
                out.append({"k": k, "n_full_scores": n_full, "n_ivf_probe": min(ok)})
                break
    return out


def study(quick: bool, threads: int) -> dict:
    rows = []
    for coll in collections(quick):
        rows += grid(*coll)
        print(f"defaults study: {coll[0]} done", flush=True)
    return {"rows": rows, "fitted": fitted(rows), "crossover": crossover(quick)}


def crossover(quick: bool, sizes=(500, 1000, 2000, 3000, 4000, 8000)) -> list[dict]:
    """Per size and k: ms per query of exact and PLAID, one per call and batched (see the module docstring)."""
    from search_latency import collection
    rows = []
    for n in sizes[:3] if quick else sizes:
        docs, queries = collection(n, 12 if quick else 30, 384)
        docs = [d.astype(np.float32) for d in docs]
        ids = [f"d{i}" for i in range(n)]
        indexes = {"exact": build("exact", "exact", docs, ids)[0], "plaid": build("plaid", "plaid", docs, ids)[0]}
        for k in (10, 100):
            times = {(kind, mode): [] for kind in indexes for mode in ("one", "batched")}
            for _ in range(3):  # interleaved rounds
                for kind, index in indexes.items():
                    index.search(queries[:1], k=k)
                    times[kind, "one"].append(_hits(index, queries, k)[1])
                    t = time.perf_counter()
                    index.search(queries, k=k)
                    times[kind, "batched"].append((time.perf_counter() - t) / len(queries) * 1000)
            rows.append({"documents": n, "tokens": int(sum(len(d) for d in docs)), "dim": 384, "k": k,
                         **{f"{kind}_{mode}_ms": float(np.median(v)) for (kind, mode), v in times.items()}})
            print(rows[-1], flush=True)
        for index in indexes.values():
            shutil.rmtree(index.folder, ignore_errors=True)
    return rows
