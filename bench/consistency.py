"""Load and consistency of ``maxsim serve`` while it is written to.

    python bench/consistency.py [--clients 16] [--duration 60] [--model default] [--readers 2]
                                [--documents N] [--index FOLDER] [--output bench/results/consistency.md]

Indexes tests/fixtures/data/cranfield (exact, hybrid; its first ``--documents`` documents, default
all) into a fresh folder under bench/_work — or copies ``--index``, a folder built so before — starts
``maxsim serve`` on 127.0.0.1, then runs two phases of ``--duration`` seconds each:
1. ``--clients`` search clients (half dense, half hybrid, k=10, Cranfield's queries in turn);
2. the same clients plus one writer that adds (new ids), upserts (new text for an id it added) and
   deletes (an id it added) through the service, one request at a time.
Prints requests/s, p50/p95 latency and errors by status per phase, the search throughput during
writes relative to without, the server's resident memory (now and peak, from /proc) after each
phase, the load average, and afterwards checks every acknowledged write: each added or upserted
document is gettable with its last text and found (top 10) by that text; each deleted id is 404.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, WORK, cranfield_texts, load_average, machine_line, markdown_table  # noqa: E402
from service import HOST, free_port, memory_kib, start_server  # noqa: E402


class Tally:
    """Latencies (s) of successful requests and error counts by status (or exception name)."""

    def __init__(self):
        self.latencies, self.errors, self.examples = [], collections.Counter(), []

    async def call(self, send, ok=(200,)):
        start = time.perf_counter()
        try:
            response = await send()
        except httpx.HTTPError as error:
            self.errors[type(error).__name__] += 1
            return None
        if response.status_code not in ok:
            self.errors[response.status_code] += 1
            self.examples.append(response.text[:160])
            return None
        self.latencies.append(time.perf_counter() - start)
        return response

    def row(self, name: str, seconds: float) -> list:
        ms = np.array(self.latencies or [np.nan]) * 1000
        errors = ", ".join(f"{status}: {n}" for status, n in sorted(self.errors.items(), key=str)) or "0"
        return [name, len(self.latencies), f"{len(self.latencies) / seconds:.1f}", f"{np.percentile(ms, 50):.0f}",
                f"{np.percentile(ms, 95):.0f}", errors]


async def searcher(http, queries, hybrid: bool, stop: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        body = {"queries": [rng.choice(queries)], "k": 10, "hybrid": hybrid}
        await tally.call(lambda body=body: http.post("/search", json=body))


async def writer(http, texts, stop: float, tally: Tally, alive: dict, deleted: set) -> None:
    """Add / upsert / delete (6:2:2) one at a time; ``alive``: id -> last acknowledged text."""
    rng, n = random.Random(7), 0
    while time.monotonic() < stop:
        choice = rng.random()
        if choice < 0.6 or len(alive) < 3:
            doc_id, text = f"bench-{n}", f"{rng.choice(texts)} (bench note {n})"
            n += 1
            added = {"documents": [{"id": doc_id, "text": text}]}
            if await tally.call(lambda added=added: http.post("/documents", json=added), ok=(201,)):
                alive[doc_id] = text
        elif choice < 0.8:
            doc_id = rng.choice(sorted(alive))
            text = f"{rng.choice(texts)} (bench rewrite {n})"
            n += 1
            if await tally.call(lambda doc_id=doc_id, text=text: http.put(f"/documents/{doc_id}", json={"text": text})):
                alive[doc_id] = text
        else:
            doc_id = rng.choice(sorted(alive))
            if await tally.call(lambda doc_id=doc_id: http.delete(f"/documents/{doc_id}")):
                del alive[doc_id]
                deleted.add(doc_id)


async def phase(url: str, queries, texts, clients: int, duration: float, write: bool, alive, deleted):
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    searches, writes = Tally(), Tally()
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        stop = time.monotonic() + duration
        began = time.perf_counter()
        tasks = [searcher(http, queries, i % 2 == 1, stop, searches, i) for i in range(clients)]
        if write:
            tasks.append(writer(http, texts, stop, writes, alive, deleted))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - began
    return searches, writes, seconds


async def verify(url: str, alive: dict, deleted: set) -> list[str]:
    """Problems with acknowledged writes (empty: all visible / gone as acknowledged)."""
    problems = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        for doc_id, text in alive.items():
            got = await http.get(f"/documents/{doc_id}")
            if got.status_code != 200 or got.json()["text"] != text:
                problems.append(f"{doc_id}: GET {got.status_code}")
            hits = (await http.post("/search", json={"queries": [text], "k": 10})).json()["results"][0]
            if doc_id not in [hit["id"] for hit in hits]:
                problems.append(f"{doc_id}: not in the top 10 for its own text")
        for doc_id in deleted:
            status = (await http.get(f"/documents/{doc_id}")).status_code
            if status != 404:
                problems.append(f"{doc_id}: deleted but GET {status}")
    return problems


def build(args, folder: Path) -> None:
    """The served folder: a copy of ``--index``, or Cranfield (its first ``--documents``) indexed anew."""
    shutil.rmtree(folder, ignore_errors=True)
    if args.index:
        shutil.copytree(args.index, folder)
        return
    source = SHARED / "data" / "cranfield" / "corpus.jsonl"
    if args.documents:
        part = WORK / f"cranfield-{args.documents}.jsonl"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[: args.documents]),
                        encoding="utf-8")
        source = part
    subprocess.run([sys.executable, "-m", "maxsim.cli", "index", str(source), "--output", str(folder), "--model",
                    args.model, "--index", "exact", "--hybrid"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--readers", type=int, default=2, help="maxsim serve --readers (search workers).")
    parser.add_argument("--documents", type=int, default=None, help="Index only the first N Cranfield documents.")
    parser.add_argument("--index", type=Path, default=None, help="Serve a copy of this folder instead of indexing.")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    args.load = load_average()
    texts, queries = cranfield_texts()
    folder = WORK / "consistency-index"
    build(args, folder)
    port = free_port()
    server = start_server(folder, port, args.readers, None)
    url, alive, deleted, memory = f"http://{HOST}:{port}", {}, set(), []
    try:
        quiet, _, quiet_s = asyncio.run(phase(url, queries, texts, args.clients, args.duration, False, alive, deleted))
        memory.append(memory_kib(server.pid))
        busy, writes, busy_s = asyncio.run(phase(url, queries, texts, args.clients, args.duration, True, alive,
                                                 deleted))
        memory.append(memory_kib(server.pid))
        problems = asyncio.run(verify(url, alive, deleted))
        stats = asyncio.run(_stats(url))
    finally:
        server.terminate()
        server.wait(60)
    ratio = (len(busy.latencies) / busy_s) / max(len(quiet.latencies) / quiet_s, 1e-9)
    report = "\n".join([
        f"Command: `python bench/consistency.py {' '.join(sys.argv[1:])}`", "",
        f"{args.clients} search clients (half hybrid) + 1 writer, {args.duration:.0f} s per phase, "
        f"model {args.model!r}, {args.readers} readers; {stats['documents']} documents at the end, "
        f"{stats['tokens']} token vectors", "", machine_line(args.load),
        "",
        markdown_table(["phase", "requests", "requests/s", "p50 ms", "p95 ms", "errors by status"],
                       [quiet.row("searches, no writes", quiet_s), busy.row("searches during writes", busy_s),
                        writes.row("writes (add/upsert/delete)", busy_s)]),
        "",
        f"search throughput during writes: {ratio:.0%} of without",
        f"server resident memory: {memory[0][0] / 1024:.0f} MiB after the searches, {memory[1][0] / 1024:.0f} MiB "
        f"after searches and writes, {memory[1][1] / 1024:.0f} MiB at its peak",
        f"verified: {len(alive)} acknowledged documents gettable and found by their text, {len(deleted)} "
        f"acknowledged deletes gone; problems: {len(problems)} {problems[:5]}",
        f"error examples: {(quiet.examples + busy.examples + writes.examples)[:3]}",
    ])
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n", encoding="utf-8")


async def _stats(url: str) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        return (await http.get("/stats")).json()


if __name__ == "__main__":
    main()
