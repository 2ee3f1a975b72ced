"""Pages: encoding speed (maxsim vs sentence-transformers 6.2), bytes per page on disk, and search
latency over collections of pages (``--parts encode,bytes,search``).

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

Bytes per page: the pages encoded by each model (realistic shapes: the real token counts), pooled
with ``pool_factor`` 1, 2, 3 (``maxsim.models.pooling``, no protected token: what a page collection
stores), added to an ``ExactIndex`` (float16) and to ``PlaidIndex``es of ``nbits`` 2 and 4 without
the float16 copy (``rescore=None``: the compressed tier only) through the index API; bytes per page
are measured on disk as the growth of each index when the same pages are added a second time
(so the codec, trained once, is left out). The page image column is the WebP copy a page
collection keeps (``maxsim.search.pages``, longest side 1,024 px) of a synthetic letter page.

Search latency: synthetic patch vectors (``maxsim.index.synthetic``: ``--vectors`` vectors of 128
dims per page, clustered; 32-token queries), ``--sizes`` pages, one query per call, k=10: exact
(float16) against PLAID nbits 2 and 4 (default search settings, with and without the float16
copy), side by side in one run; recall@10 of PLAID against exact.

    python -P bench/pages.py [--parts encode,bytes,search] [--shapes tiny,realistic]
                             [--families colpali,colqwen2,colmodernvbert] [--pages 8] [--queries 16]
                             [--batch-size 4] [--repeats 2] [--threads 2]
                             [--sizes 1000,10000] [--vectors 1000] [--search-queries 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from maxsim.index import ExactIndex, PlaidIndex
from maxsim.index.synthetic import ClusteredCollection
from maxsim.models.pages import PageEncoder
from maxsim.models.pooling import pool_embeddings
from maxsim.search.pages import stored_copy

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # after maxsim: bench/maxsim.py must not shadow it
from common import ROOT, WORK, load_average, machine_line, markdown_table  # noqa: E402

sys.path.append(str(ROOT / "tests"))
from page_checkpoints import FAMILIES, SHAPES, build, describe  # noqa: E402

PAGE = (1224, 1584)  # US letter at 144 dpi (maxsim.io.pages.DPI)
POOL_FACTORS = (1, 2, 3)
# the indexes compared: name -> (class, parameters)
INDEXES = {"exact float16": (ExactIndex, {"dtype": "float16"}),
           "PLAID nbits 2": (PlaidIndex, {"nbits": 2, "rescore": None}),
           "PLAID nbits 4": (PlaidIndex, {"nbits": 4, "rescore": None}),
           "PLAID nbits 2 + float16 copy": (PlaidIndex, {"nbits": 2, "rescore": "float16"}),
           "PLAID nbits 4 + float16 copy": (PlaidIndex, {"nbits": 4, "rescore": "float16"})}
BYTES_INDEXES = ("exact float16", "PLAID nbits 2", "PLAID nbits 4")
CHUNK_PAGES = 250  # pages generated and added at a time (bounded memory at 10k pages of 1,000 vectors)
SEARCH_HEADER = ["pages", "vectors / page", "index", "build s", "kB / page on disk", "ms / query (median)",
                 "ms / query (p90)", "recall@10 vs exact"]
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


def speed_rows(family: str, shape_name: str, ours: PageEncoder, folder: Path, pages, queries, args) -> list:
    import sentence_transformers

    theirs = sentence_transformers.MultiVectorEncoder(str(folder), device="cpu")
    batch = args.batch_size
    documents = timed_rounds({"maxsim": lambda: ours.encode_document(pages, batch_size=batch),
                              "st": lambda: theirs.encode_document(pages, batch_size=batch)}, args.repeats)
    query_times = timed_rounds({"maxsim": lambda: ours.encode_query(queries, batch_size=32),
                                "st": lambda: theirs.encode_query(queries, batch_size=32)}, args.repeats)
    rows = []
    for what, times, count in (("pages", documents, len(pages)), ("queries", query_times, len(queries))):
        ours_rate = count / times["maxsim"]
        st_rate = f"{count / times['st']:.2f}" if times["st"] else "fails (no visual prompt)"
        ratio = f"{times['st'] / times['maxsim']:.2f}x" if times["st"] else "-"
        rows.append([family, shape_name, what, f"{ours_rate:.2f}", st_rate, ratio])
    return rows


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def index_bytes_per_page(name: str, vectors: list[np.ndarray], dim: int) -> float:
    """Bytes on disk one more page adds to the index ``name`` holding ``vectors``: the growth when
    the same pages are added again under new ids, per page."""
    kind, params = INDEXES[name]
    with tempfile.TemporaryDirectory() as tmp:
        index = kind.create(Path(tmp) / "index", dim, **params)
        index.add([f"a{i}" for i in range(len(vectors))], vectors)
        before = folder_bytes(Path(tmp))
        index.add([f"b{i}" for i in range(len(vectors))], vectors)
        return (folder_bytes(Path(tmp)) - before) / len(vectors)


def bytes_rows(family: str, encoded, dim: int, image_bytes: float) -> list:
    vectors = [page.vectors for page in encoded]
    rows = []
    for factor in POOL_FACTORS:
        start = time.perf_counter()
        pooled = pool_embeddings(vectors, factor, protected_tokens=0)
        pool_ms = (time.perf_counter() - start) * 1000 / len(vectors)
        sizes = [index_bytes_per_page(name, pooled, dim) for name in BYTES_INDEXES]
        rows.append([family, factor, f"{np.mean([len(v) for v in pooled]):.0f}", f"{pool_ms:.0f}",
                     *(f"{b / 1000:.1f}" for b in sizes), f"{image_bytes / 1000:.0f}",
                     f"{75_000 * sizes[0] / 1e9:.1f}", f"{75_000 * sizes[1] / 1e9:.2f}"])
    return rows


def search_rows(n_pages: int, n_vectors: int, n_queries: int) -> list:
    """Per index kind (printed as measured): build time, bytes per page, median and p90 ms per
    query, recall@10 vs exact."""
    collection = ClusteredCollection(n_pages, dim=128, doc_tokens=(int(0.9 * n_vectors), int(1.1 * n_vectors)),
                                     seed=n_pages)
    queries = collection.queries(n_queries)
    rows, truth = [], None
    for name, (kind, params) in INDEXES.items():
        root = Path(tempfile.mkdtemp(dir=WORK))
        try:
            start = time.perf_counter()
            index = kind.create(root / "index", 128, **params)
            for first in range(0, n_pages, CHUNK_PAGES):
                last = min(n_pages, first + CHUNK_PAGES)
                index.add([str(i) for i in range(first, last)], collection.documents(first, last))
            build = time.perf_counter() - start
            index.search(queries[:2], k=10)  # warm: files mapped, caches filled
            times, found = [], []
            for q in queries:
                start = time.perf_counter()
                found.append([doc for doc, _ in index.search([q], k=10)[0]])
                times.append((time.perf_counter() - start) * 1000)
            truth = truth or found
            recall = np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])
            rows.append([n_pages, n_vectors, name, f"{build:.0f}", f"{folder_bytes(root) / n_pages / 1000:.1f}",
                         f"{np.median(times):.1f}", f"{np.percentile(times, 90):.1f}", f"{recall:.3f}"])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(markdown_table(SEARCH_HEADER, rows[-1:]).splitlines()[-1], flush=True)
    return rows


def model_parts(args, pages, queries) -> tuple[list, list, list]:
    """The encode and bytes parts: (speed rows, bytes rows, shape lines)."""
    image_bytes = float(np.mean([len(stored_copy(page)) for page in pages]))
    speed, sizes, shapes = [], [], []
    for shape_name in args.shapes.split(","):
        for family in args.families.split(","):
            shape = SHAPES[shape_name][family]
            folder = WORK / "pages" / f"{shape_name}-{family}"
            if not (folder / "config.json").is_file():
                build(family, folder, shape)
            shapes.append(f"- {shape_name} {describe(family, shape)}")
            ours = PageEncoder(folder, device="cpu", dtype="float32")
            if "encode" in args.parts:
                speed += speed_rows(family, shape_name, ours, folder, pages, queries, args)
            if "bytes" in args.parts and (shape_name == "realistic" or args.shapes == "tiny"):
                encoded = ours.encode_pages(pages, batch_size=args.batch_size)
                sizes += bytes_rows(f"{family} ({shape_name})", encoded, shape["dim"], image_bytes)
    return speed, sizes, shapes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="encode,bytes,search")
    parser.add_argument("--shapes", default="tiny,realistic")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="1000,10000", help="Pages per collection in the search part.")
    parser.add_argument("--vectors", type=int, default=1000, help="Vectors per page in the search part.")
    parser.add_argument("--search-queries", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pages = synthetic_pages(args.pages)
    queries = (QUERIES * args.queries)[: args.queries]
    start_load = load_average()
    print(f"parts {args.parts}; {args.pages} pages {PAGE[0]}x{PAGE[1]}, "
          f"{args.queries} queries, batch {args.batch_size}, {args.threads} threads, best of {args.repeats}\n")
    speed, sizes = [], []
    if "encode" in args.parts or "bytes" in args.parts:
        speed, sizes, shapes = model_parts(args, pages, queries)
        print("\n".join(shapes) + "\n")
    if speed:
        print(markdown_table(["family", "shape", "encode", "maxsim /s", "sentence-transformers /s",
                              "maxsim speed-up"], speed) + "\n")
    if sizes:
        print(markdown_table(["model", "pool factor", "vectors / page", "pooling ms / page", "exact float16 kB",
                              "PLAID nbits 2 kB", "PLAID nbits 4 kB", "page image kB", "75k pages exact GB",
                              "75k pages PLAID-2 GB"], sizes) + "\n")
    if "search" in args.parts:
        WORK.mkdir(parents=True, exist_ok=True)
        print(markdown_table(SEARCH_HEADER, []))  # rows follow as they are measured
        for n_pages in args.sizes.split(","):
            search_rows(int(n_pages), args.vectors, args.search_queries)
    print("\n" + machine_line(start_load))


if __name__ == "__main__":
    main()
