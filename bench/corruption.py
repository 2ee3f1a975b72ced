"""The corruption fuzzer of tests/corruption.py, at a chosen number of trials, with a table by file.

    python bench/corruption.py [--trials 1000] [--seed 0] [--output bench/results/corruption.md]

A served retriever folder (60 short documents with metadata, hybrid, exact, the tiny test model) gets
random bytes (a few scattered, or a run of random bytes or zeros) in a random stored file per trial;
the serving collection and a freshly opened one answer a fixed set of questions. Each trial is
``correct`` (all answers equal the undamaged folder's), ``detected`` (a CorruptedError naming the
file), ``found`` (a wrong answer that ``maxsim check`` names) or ``silent`` (anything else: must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
import corruption  # noqa: E402
from common import markdown_table  # noqa: E402
from maxsim import MultiVectorEncoder  # noqa: E402

KINDS = (("state.sqlite3-wal", "state.sqlite3-wal"), ("state.sqlite3", "state.sqlite3"),
         ("retriever.json", "retriever.json"), ("-vectors.npy", "index vectors"), ("index/", "index, other files"),
         ("bm25/", "BM25 copy"))
OUTCOMES = ("correct", "detected", "found", "silent")


def kind(description: str) -> str:
    """The file kind a trial's description names."""
    path = description.split(" in ", 1)[1].split(":", 1)[0]
    return next((name for marker, name in KINDS if marker in path), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model_path = ROOT / "tests" / "fixtures" / "models" / "st6-tiny-bert"
    model = MultiVectorEncoder(model_path, device="cpu", dtype="float32")
    table, silent, began = defaultdict(Counter), [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = corruption.build(Path(tmp) / "base", model, str(model_path))
        with corruption.serve(base, Path(tmp) / "work", model) as pristine:
            expected = corruption.answers(pristine)
        rng = random.Random(args.seed)
        for _ in range(args.trials):
            outcome, what = corruption.trial(base, Path(tmp) / "work", model, expected, rng)
            table[kind(what)][outcome] += 1
            silent += [what] if outcome == "silent" else []
    rows = [[name, sum(counts.values()), *(counts[o] for o in OUTCOMES)] for name, counts in sorted(table.items())]
    totals = [sum(row[i] for row in rows) for i in range(1, 6)]
    report = "\n".join([
        f"`python bench/corruption.py --trials {args.trials} --seed {args.seed}`: {args.trials} trials in "
        f"{time.perf_counter() - began:.0f} s, load average {os.getloadavg()[0]:.2f} at the end",
        "",
        markdown_table(["damaged file", "trials", *OUTCOMES], rows + [["all", *totals]]),
        "",
        f"silent: {silent[:5]}",
    ])
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n", encoding="utf-8")
    sys.exit(1 if silent else 0)


if __name__ == "__main__":
    main()
