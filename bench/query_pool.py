"""Many queries in one search call: one after another against side by side on the query pool
(``maxsim.index.parallel``), in one process, for the exact and PLAID indexes.

    python -P bench/query_pool.py            # the real collections and a 128-dim synthetic set (~4 min)

Collections: Cranfield (225 queries) and the nq / msmarco KD samples (10 queries each), encoded by
the default model (``index_data``, 384 dims), and 5,000 synthetic documents of the 20k set's
generator (128 dims, 100 queries; bench/index.py). Each is indexed exact (float16) and PLAID
(defaults), opened and warmed. Rounds interleave ``MAXSIM_QUERY_THREADS=1`` (in order) with the
default (torch's threads); ms per query with every query in one call, median of ``--rounds``, k = 10
and 100. Both ways must return the same hits and scores. Result: bench/results/query_pool.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "bench"))  # after src/: bench/maxsim.py must not shadow the package
import index_data  # noqa: E402
from common import WORK, load_average, machine_line, markdown_table  # noqa: E402
from index import synthetic  # noqa: E402
from maxsim.index import ExactIndex, PlaidIndex, open_index  # noqa: E402
from maxsim.index.parallel import query_threads  # noqa: E402

RESULT = ROOT / "bench" / "results" / "query_pool.md"


def collections():
    """(name, document vectors, ids, queries) of each collection."""
    for name in index_data.NAMES:
        coll = index_data.load(name)
        yield name, coll.docs, coll.ids, coll.queries
    docs, ids, queries = synthetic(5_000, 100)
    yield "synthetic 5k (128 dims)", docs, ids, queries


def batched(index, queries, k: int, threads: str) -> tuple[float, list]:
    """(ms per query, hits with scores) of every query in one call, ``MAXSIM_QUERY_THREADS=threads``."""
    os.environ["MAXSIM_QUERY_THREADS"] = threads
    t = time.perf_counter()
    hits = index.search(queries, k=k)
    return (time.perf_counter() - t) / len(queries) * 1e3, hits


def compare(index, queries, rounds: int) -> list[str]:
    """Per k: "in order / side by side (speed-up)", the same results asserted every round."""
    cells, pool = [], str(query_threads())
    for k in (10, 100):
        times, want = {"1": [], pool: []}, None
        for _ in range(rounds):
            for threads in times:
                ms, hits = batched(index, queries, k, threads)
                want = want or hits
                if hits != want:
                    raise SystemExit(f"{index.folder}: k={k} with {threads} query threads found other hits")
                times[threads].append(ms)
        a, b = float(np.median(times["1"])), float(np.median(times[pool]))
        cells.append(f"{a:.1f} / {b:.1f} ({a / b:.2f}x)")
    return cells


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    os.environ.pop("MAXSIM_QUERY_THREADS", None)
    start, pool, rows = load_average(), query_threads(), []
    for name, docs, ids, queries in collections():
        for label, cls in (("exact", ExactIndex), ("PLAID", PlaidIndex)):
            folder = WORK / "query-pool" / label
            shutil.rmtree(folder, ignore_errors=True)
            cls.create(folder, docs[0].shape[1]).add(ids, docs)
            index = open_index(folder)
            index.warm()
            rows.append([name, label, len(queries), *compare(index, queries, args.rounds)])
            shutil.rmtree(folder, ignore_errors=True)
    text = "\n\n".join([
        "# Queries in one call: in order vs side by side (`bench/query_pool.py`)",
        f"`python -P bench/query_pool.py`; {machine_line(start)} Query pool: {pool} threads.",
        f"ms per query, every query in one call, in order (`MAXSIM_QUERY_THREADS=1`) / side by side "
        f"(speed-up), median of {args.rounds} interleaved rounds; the same hits and scores both ways.",
        markdown_table(["collection", "index", "queries", "k = 10", "k = 100"], rows)]) + "\n"
    RESULT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
