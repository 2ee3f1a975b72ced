"""Many queries in one search call: one after another against side by side on the query pool
(``maxsim.index.parallel``), in one process, for the exact and PLAID indexes.

    python -P bench/query_pool.py            # the real collections and a 128-dim synthetic set (~4 min)

Collections: Cranfield (225 queries) and the nq / msmarco KD samples (10 queries each), encoded by
the default model (``index_data``, 384 dims), and 5,000 synthetic documents of the 20k set's
generator (128 dims, 100 queries; bench/index.py). Each is indexed exact (float16) and PLAID
(defaults), opened and warmed. Rounds interleave ``MAXSIM_QUERY_THREADS=1`` (in order) with the
default (torch's threads); ms per query with every query in one call, median of ``--rounds``, k = 10
and 100. Both ways must return the same hits and scores. Then, in a fresh process per index of
Cranfield, one query per call before and after the first call with many queries (the one that
starts the pool): the pool must not slow the calls that do not use it. Result:
bench/results/query_pool.md.
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


def one_per_call(folder: str, rounds: int) -> None:
    """Print {k: [ms per query before the first batch, after it]}: Cranfield, one query per call,
    in this fresh process (the pool starts with its first call of many queries)."""
    index, queries = open_index(folder), index_data.load("cranfield").queries
    index.warm()

    def alone(k):
        t = time.perf_counter()
        for q in queries:
            index.search([q], k=k)
        return (time.perf_counter() - t) / len(queries) * 1e3

    before = {k: float(np.median([alone(k) for _ in range(rounds)])) for k in (10, 100)}
    index.search(queries, k=10)
    print(json.dumps({k: [before[k], float(np.median([alone(k) for _ in range(rounds)]))] for k in (10, 100)}))


def before_after(folder: Path, rounds: int) -> list[str]:
    """``one_per_call`` in a fresh process: "before / after (ratio)" per k."""
    out = subprocess.run([sys.executable, "-P", __file__, "--one-per-call", str(folder), "--rounds", str(rounds)],
                         check=True, capture_output=True, text=True).stdout
    return [f"{a:.1f} / {b:.1f} ({b / a:.2f}x)" for a, b in json.loads(out.splitlines()[-1]).values()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--one-per-call", metavar="FOLDER", help=argparse.SUPPRESS)  # the fresh process's part
    args = p.parse_args()
    os.environ.pop("MAXSIM_QUERY_THREADS", None)
    if args.one_per_call:
        return one_per_call(args.one_per_call, args.rounds)
    start, pool, rows, alone = load_average(), query_threads(), [], []
    for name, docs, ids, queries in collections():
        for label, cls in (("exact", ExactIndex), ("PLAID", PlaidIndex)):
            folder = WORK / "query-pool" / label
            shutil.rmtree(folder, ignore_errors=True)
            cls.create(folder, docs[0].shape[1]).add(ids, docs)
            index = open_index(folder)
            index.warm()
            rows.append([name, label, len(queries), *compare(index, queries, args.rounds)])
            if name == "cranfield":
                alone.append([label, *before_after(folder, args.rounds)])
            shutil.rmtree(folder, ignore_errors=True)
    text = "\n\n".join([
        "# Queries in one call: in order vs side by side (`bench/query_pool.py`)",
        f"`python -P bench/query_pool.py`; {machine_line(start)} Query pool: {pool} threads.",
        f"ms per query, every query in one call, in order (`MAXSIM_QUERY_THREADS=1`) / side by side "
        f"(speed-up), median of {args.rounds} interleaved rounds; the same hits and scores both ways.",
        markdown_table(["collection", "index", "queries", "k = 10", "k = 100"], rows),
        "Cranfield, one query per call in a fresh process: ms per query before / after its first call "
        f"with many queries (which starts the pool), median of {args.rounds} rounds each.",
        markdown_table(["index", "k = 10", "k = 100"], alone)]) + "\n"
    RESULT.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
