"""Long documents over HTTP: ``PUT /documents/{id}`` of a long text to a running ``maxsim serve``
(default model), acknowledged once split into passages, encoded and committed; then the search for
a sentence from its end.

    python bench/long_documents.py [--sizes 1,5] [--output bench/results/long_documents.md]

The server serves a fresh folder of 20 shipped Cranfield abstracts (default model, exact, hybrid).
Each document is Cranfield abstracts (the others) repeated to the size in MB, then one sentence
found nowhere else. Per size: characters, passages, the PUT's wall time (request to committed
answer), the search's wall time (dense, k=10), the document's rank and whether its best passage is
the one holding the last sentence.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, load_average, machine_line, markdown_table, publish  # noqa: E402
from service import HOST, free_port, start_server  # noqa: E402

DATA = ROOT / "src" / "maxsim" / "data" / "cranfield"
ENDING = "Zebra mussel colonies clog the cooling water intakes of the supersonic wind tunnel every spring."


def abstracts() -> list[str]:
    return [json.loads(line)["text"] for line in open(DATA / "corpus.jsonl", encoding="utf-8")]


def long_text(megabytes: float, texts: list[str]) -> str:
    """``megabytes`` million characters: abstracts 20 onwards, repeated, then ``ENDING``."""
    body, n = [], int(megabytes * 1_000_000) - len(ENDING) - 2
    while sum(len(t) + 2 for t in body) < n:
        body.append(texts[20 + len(body) % (len(texts) - 20)])
    return "\n\n".join(body)[:n] + "\n\n" + ENDING


def build_index(folder: Path, texts: list[str]) -> None:
    source = folder.parent / "first-20.jsonl"
    source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts[:20])))
    subprocess.run([sys.executable, "-m", "maxsim.cli", "index", str(source), "--output", str(folder),
                    "--model", "default", "--index", "exact", "--hybrid"], check=True, capture_output=True)


def run(url: str, megabytes: float, texts: list[str]) -> list:
    text = long_text(megabytes, texts)
    doc_id = f"report-{megabytes:g}mb"
    start = time.perf_counter()
    answer = httpx.put(f"{url}/documents/{doc_id}", json={"text": text}, timeout=None)
    put_s = time.perf_counter() - start
    answer.raise_for_status()
    passages = httpx.get(f"{url}/stats").json()["passages"]
    start = time.perf_counter()
    hits = httpx.post(f"{url}/search", json={"queries": [ENDING], "k": 10}, timeout=120).json()["results"][0]
    search_ms = (time.perf_counter() - start) * 1000
    rank = next((i + 1 for i, hit in enumerate(hits) if hit["id"] == doc_id), None)
    last = rank is not None and ENDING in hits[rank - 1]["passage"]["text"]
    return [f"{megabytes:g}", f"{len(text):,}", passages, f"{put_s:.1f}", f"{len(text) / put_s:,.0f}",
            f"{search_ms:.0f}", rank or "> 10", "yes" if last else "no"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1", help="Comma-separated document sizes in MB (million characters).")
    parser.add_argument("--output", type=Path, help="Also write the markdown table here.")
    args = parser.parse_args()
    if max(float(size) for size in args.sizes.split(",")) > 5:
        raise SystemExit("sizes up to 5 MB: the service's default max_document_chars")
    load, texts = load_average(), abstracts()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "index"
        build_index(folder, texts)
        port = free_port()
        process = start_server(folder, port, readers=1, threads=None)
        try:
            rows = [run(f"http://{HOST}:{port}", float(size), texts) for size in args.sizes.split(",")]
        finally:
            process.terminate()
            process.wait(timeout=60)
    text = "\n".join([
        f"Command: `python bench/long_documents.py {' '.join(sys.argv[1:])}`", "",
        "`maxsim serve` (default model, exact, hybrid, 1 reader) over 20 abstracts; one PUT per size, then a "
        "dense search (k=10) for the document's last sentence.", "", machine_line(load), "",
        markdown_table(["MB", "characters", "passages in the folder", "PUT s (to committed)", "characters/s",
                        "search ms", "rank", "best passage holds the last sentence"], rows)])
    publish(text, args.output)


if __name__ == "__main__":
    main()
