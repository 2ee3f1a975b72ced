"""Exact search over a subset (a filter's documents): the plain int8 scan copy against prepacked int8
blocks, side by side in one process, over the share of documents selected.

    python -P bench/exact_subset.py                       # Cranfield, 2-100 % selected (~1 min)
    python -P bench/exact_subset.py --collection nq-kd

Collection: ``index_data`` (the default model, 384 dims). One ExactIndex (float16) is opened twice:
once with packing off (``packed_int8.used`` returns False: the ``torch._int_mm`` copy) and once as
shipped (prepacked blocks where ``packed_int8.available()``). Per share, a seeded random subset of
the documents; rounds interleave the two copies; ms per query, median of ``--rounds``: one query per
call (the first ``--one`` queries) and ``--batch`` queries in one call, k = 10. The two copies'
hits must be identical (both are exact). Result: bench/results/exact_subset-<collection>.md.
"""

from __future__ import annotations

import argparse
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
from maxsim.index import ExactIndex, open_index, packed_int8  # noqa: E402

RESULTS = ROOT / "bench" / "results"  # exact_subset-<collection>.md
SHARES = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def open_both(folder: Path):
    """(the index with a plain int8 scan copy, the index with the shipped copy), both warmed."""
    shipped = packed_int8.used
    packed_int8.used = lambda *_: False
    try:
        plain = open_index(folder)
        plain.warm()
    finally:
        packed_int8.used = shipped
    packed = open_index(folder)
    packed.warm()
    return plain, packed


def timed(index, queries, subset, batch: bool) -> tuple[float, list]:
    """(ms per query, hits): all ``queries`` in one call, or one per call."""
    t = time.perf_counter()
    hits = index.search(queries, k=10, subset=subset) if batch else \
        [index.search([q], k=10, subset=subset)[0] for q in queries]
    return (time.perf_counter() - t) / len(queries) * 1e3, hits


def sweep(plain, packed, coll, args) -> list[list]:
    """One table row per share: ms per query of both copies, one per call and batched."""
    rng, rows = np.random.default_rng(0), []
    for share in SHARES:
        subset = list(rng.choice(coll.ids, max(1, int(len(coll.ids) * share)), replace=False))
        times, found = {}, {}
        for _ in range(args.rounds):
            for name, index in (("plain", plain), ("packed", packed)):
                for batch, queries in ((False, coll.queries[: args.one]), (True, coll.queries[: args.batch])):
                    ms, hits = timed(index, queries, subset, batch)
                    times.setdefault((name, batch), []).append(ms)
                    if found.setdefault(batch, hits) != hits:  # every round, both copies: the same hits
                        raise SystemExit(f"{share:.0%}: the {name} copy found other hits")
        med = {key: float(np.median(v)) for key, v in times.items()}
        rows.append([f"{share:.0%}", f"{med[('plain', False)]:.1f} / {med[('plain', True)]:.2f}",
                     f"{med[('packed', False)]:.1f} / {med[('packed', True)]:.2f}",
                     f"{med[('packed', False)] / med[('plain', False)]:.2f}x / "
                     f"{med[('packed', True)] / med[('plain', True)]:.2f}x", "yes"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collection", choices=index_data.NAMES, default="cranfield")
    p.add_argument("--one", type=int, default=25, help="queries timed one per call")
    p.add_argument("--batch", type=int, default=100, help="queries timed in one call")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    start = load_average()
    coll = index_data.load(args.collection)
    folder = WORK / "exact-subset" / args.collection
    shutil.rmtree(folder, ignore_errors=True)
    ExactIndex.create(folder, coll.docs[0].shape[1]).add(coll.ids, coll.docs)
    plain, packed = open_both(folder)
    form = "prepacked blocks" if packed._segments[0].arrays["scan"].blocks is not None else \
        "no prepacked blocks on this machine (both plain)"
    rows = sweep(plain, packed, coll, args)
    text = "\n\n".join([
        "# Exact search over a subset: plain int8 copy vs prepacked blocks (`bench/exact_subset.py`)",
        f"`python -P bench/exact_subset.py --collection {args.collection}`; {machine_line(start)} "
        f"Shipped copy: {form}.",
        f"{args.collection}, k = 10, ms per query: one per call ({args.one} queries) / {args.batch} queries "
        f"in one call, median of {args.rounds} interleaved rounds.",
        markdown_table(["documents selected", "plain int8 copy", "prepacked", "prepacked / plain", "same hits"],
                       rows)]) + "\n"
    (RESULTS / f"exact_subset-{args.collection}.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
