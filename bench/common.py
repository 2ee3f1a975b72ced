"""Shared helpers for the benchmark scripts: data loading, timing, markdown tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "tests" / "fixtures"  # models/, data/ (copied from ../shared; see tests/README.md)
WORK = ROOT / "bench" / "_work"


def cranfield_texts() -> tuple[list[str], list[str]]:
    """(documents "title text", queries) of tests/fixtures/data/cranfield."""
    folder = SHARED / "data" / "cranfield"
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f if line.strip()]
    return [f"{d.get('title', '')} {d['text']}".strip() for d in docs], queries


def best_of(fn, repeats: int) -> float:
    """Fastest wall time (s) of ``repeats`` calls: the least disturbed run on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
