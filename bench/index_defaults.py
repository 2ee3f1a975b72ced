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
"""

from __future__ import annotations

import time

import numpy as np

import index_data
from index import EXHAUSTIVE, build, recall_at, synthetic

GRID = {10: (32, 64, 128, 256), 100: (128, 256, 512, 1024)}
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
        base = {"collection": name, "role": role, "k": k, "documents": len(docs), "exhaustive_recall": recall_at(full, truth, k)}
        rows.append({**base, "setting": "defaults", "faith": recall_at(default, full, k), "recall": recall_at(default, truth, k), "ms": ms})
        for probe in PROBES:
            for n_full in GRID[k]:
                hits, ms = _hits(plaid, queries, k, n_ivf_probe=probe, n_full_scores=n_full)
                rows.append({**base, "setting": {"n_ivf_probe": probe, "n_full_scores": n_full},
                             "faith": recall_at(hits, full, k), "recall": recall_at(hits, truth, k), "ms": ms})
    for index in (exact, plaid):
        import shutil
        shutil.rmtree(index.folder, ignore_errors=True)
    return rows


def fitted(rows: list[dict]) -> list[dict]:
    """Per k: the smallest (n_full_scores, then n_ivf_probe) reaching TARGET on every fit collection."""
    out = []
    for k in (10, 100):
        fit = [r for r in rows if r["role"] == "fit" and r["k"] == k and r["setting"] != "defaults"]
        names = {r["collection"] for r in fit}
        for n_full in GRID[k]:
            ok = [p for p in PROBES if all(r["faith"] >= TARGET for r in fit if r["setting"] == {"n_ivf_probe": p, "n_full_scores": n_full})
                  and len([r for r in fit if r["setting"] == {"n_ivf_probe": p, "n_full_scores": n_full}]) == len(names)]
            if ok:
                out.append({"k": k, "n_full_scores": n_full, "n_ivf_probe": min(ok)})
                break
    return out


def study(quick: bool, threads: int) -> dict:
    rows = []
    for coll in collections(quick):
        rows += grid(*coll)
        print(f"defaults study: {coll[0]} done", flush=True)
    return {"rows": rows, "fitted": fitted(rows)}
