"""Page models: encoding speed, maxsim vs sentence-transformers 6.2, and bytes per page.

Models: random checkpoints built with transformers' own classes (tests/page_checkpoints.py), saved
in the transformers layout and loaded by both libraries from the same folder:
- ``tiny``: the test suite's shapes (a page is 16-36 patch tokens);
- ``realistic``: the published models' widths and input sizes with 2 vision and 2 text layers
  (their full depth does not fit a 2-core run): the shapes are printed with the results.
Pages: synthetic US-letter pages at 144 dpi (1224 x 1584: white, dark text-like lines, a chart
block), decoded PIL images handed to both libraries. float32, CPU, ``--threads`` threads, batch
``--batch-size``; each round runs every system once, in turn (best of ``--repeats`` rounds), so load
from other processes hits all alike. sentence-transformers 6.2 fails on ColModernVBert pages (its
processor call adds no visual prompt): that cell says so.

Bytes per page: the vectors of each encoded page (realistic shapes: the real token counts), pooled
with ``pool_factor`` 1, 2, 3 (``maxsim.models.pooling``, no protected token), stored as float16
exact vectors (2 * dim bytes per vector) or PLAID codes of ``nbits`` 2 / 4 (2 + dim * nbits / 8
bytes per vector: a centroid id and the residual codes); the index's per-document overhead is left
out.

    python -P bench/pages.py [--shapes tiny,realistic] [--families colpali,colqwen2,colmodernvbert]
                             [--pages 8] [--queries 16] [--batch-size 4] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from maxsim.models.pages import PageEncoder
from maxsim.models.pooling import pool_embeddings

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # after maxsim: bench/maxsim.py must not shadow it
from common import ROOT, WORK, markdown_table  # noqa: E402

sys.path.append(str(ROOT / "tests"))
from page_checkpoints import FAMILIES, SHAPES, build, describe  # noqa: E402

PAGE = (1224, 1584)  # US letter at 144 dpi (maxsim.io.pages.DPI)
POOL_FACTORS = (1, 2, 3)
NBITS = (2, 4)
QUERIES = ["total revenue by quarter in 2023", "which region had the highest sales growth",
           "figure showing the energy consumption of data centers", "definition of late interaction retrieval"]


def synthetic_pages(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` letter pages: margins, lines of dark blocks (words), one grey chart block."""
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(n):
        page = Image.new("RGB", PAGE, "white")
        draw = ImageDraw.Draw(page)
        y = 120
        while y < PAGE[1] - 140:
            x = 110
            while x < PAGE[0] - 160:
                width = int(rng.integers(20, 90))
                draw.rectangle([x, y, x + width, y + 14], fill=(30, 30, 30))
                x += width + 12
            y += int(rng.integers(26, 40))
        top = int(rng.integers(300, 1000))
        draw.rectangle([150, top, 700, top + 300], fill=(200, 200, 215))
        pages.append(page)
    return pages


def timed_rounds(systems: dict, repeats: int) -> dict[str, float | None]:
    """Best wall time (s) of each callable over ``repeats`` rounds, run in turn after one untimed
    warm-up round; None when it raised."""
    best: dict[str, float | None] = dict.fromkeys(systems, float("inf"))
    for round_ in range(repeats + 1):
        for name, run in systems.items():
            if best[name] is None:
                continue
            start = time.perf_counter()
            try:
                run()
            except Exception:  # sentence-transformers on ColModernVBert pages
                best[name] = None
                continue
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def speed_rows(family: str, shape_name: str, folder: Path, pages, queries, args) -> tuple[list, list]:
    import sentence_transformers

    ours = PageEncoder(folder, device="cpu", dtype="float32")
    theirs = sentence_transformers.MultiVectorEncoder(str(folder), device="cpu")
    batch = args.batch_size
    documents = timed_rounds({"maxsim": lambda: ours.encode_document(pages, batch_size=batch),
                              "st": lambda: theirs.encode_document(pages, batch_size=batch)}, args.repeats)
    query_times = timed_rounds({"maxsim": lambda: ours.encode_query(queries, batch_size=32),
                                "st": lambda: theirs.encode_query(queries, batch_size=32)}, args.repeats)
    encoded = ours.encode_pages(pages, batch_size=batch)
    rows = []
    for what, times, count in (("pages", documents, len(pages)), ("queries", query_times, len(queries))):
        ours_rate = count / times["maxsim"]
        st_rate = f"{count / times['st']:.2f}" if times["st"] else "fails (no visual prompt)"
        ratio = f"{times['st'] / times['maxsim']:.2f}x" if times["st"] else "-"
        rows.append([family, shape_name, what, f"{ours_rate:.2f}", st_rate, ratio])
    return rows, encoded


def bytes_rows(family: str, encoded, dim: int) -> list:
    vectors = [page.vectors for page in encoded]
    rows = []
    for factor in POOL_FACTORS:
        start = time.perf_counter()
        pooled = pool_embeddings(vectors, factor, protected_tokens=0)
        pool_ms = (time.perf_counter() - start) * 1000 / len(vectors)
        count = float(np.mean([len(v) for v in pooled]))
        exact = count * 2 * dim
        plaid = [count * (2 + dim * nbits / 8) for nbits in NBITS]
        rows.append([family, factor, f"{count:.0f}", f"{pool_ms:.0f}", f"{exact / 1000:.1f}",
                     *(f"{p / 1000:.1f}" for p in plaid), f"{75_000 * exact / 1e9:.1f}",
                     f"{75_000 * plaid[0] / 1e9:.2f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="tiny,realistic")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pages = synthetic_pages(args.pages)
    queries = (QUERIES * args.queries)[: args.queries]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.pages} pages {PAGE[0]}x{PAGE[1]}, "
          f"{args.queries} queries, batch {args.batch_size}, {args.threads} threads, best of {args.repeats}\n")
    speed, sizes, shapes = [], [], []
    for shape_name in args.shapes.split(","):
        for family in args.families.split(","):
            shape = SHAPES[shape_name][family]
            folder = WORK / "pages" / f"{shape_name}-{family}"
            if not (folder / "config.json").is_file():
                build(family, folder, shape)
            shapes.append(f"- {shape_name} {describe(family, shape)}")
            rows, encoded = speed_rows(family, shape_name, folder, pages, queries, args)
            speed += rows
            if shape_name == "realistic" or args.shapes == "tiny":
                sizes += bytes_rows(f"{family} ({shape_name})", encoded, shape["dim"])
    print("\n".join(shapes) + "\n")
    print(markdown_table(["family", "shape", "encode", "maxsim /s", "sentence-transformers /s", "maxsim speed-up"],
                         speed) + "\n")
    print(markdown_table(["model", "pool factor", "vectors / page", "pooling ms / page", "float16 exact kB",
                          "PLAID nbits 2 kB", "PLAID nbits 4 kB", "75k pages exact GB", "75k pages PLAID-2 GB"],
                         sizes))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
