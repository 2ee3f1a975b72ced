"""Load test of ``maxsim serve`` on loopback: N concurrent clients searching the Cranfield index.

    python bench/service.py [--index bench/_work/cranfield-default] [--clients 1 4 16]
                            [--duration 60] [--max-requests 20000] [--readers 2] [--threads N] [--hybrid]
                            [--output bench/results/service.md]

Builds the index (default model, exact, hybrid) from tests/fixtures/data/cranfield if ``--index`` does not
exist, starts ``maxsim serve`` as a subprocess on 127.0.0.1 (never another address), and for each
client count runs that many concurrent clients (asyncio + httpx, one query per request, k=10,
Cranfield's 225 queries in turn) for ``--duration`` seconds or ``--max-requests`` requests,
whichever comes first. Reports requests/s, p50/p95/max latency, errors, and the server process's
resident memory (current and peak, from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, WORK, load_average, machine_line, markdown_table, save_plot  # noqa: E402

HOST = "127.0.0.1"  # loopback only


def build_index(folder: Path) -> None:
    data = SHARED / "data" / "cranfield"
    print(f"building {folder} from {data} with the default model (once)", flush=True)
    subprocess.run([sys.executable, "-m", "maxsim.cli", "index", str(data), "--output", str(folder),
                    "--model", "default", "--index", "exact", "--hybrid"], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB: resident memory now and at its peak."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def start_server(index: Path, port: int, readers: int, threads: int | None) -> subprocess.Popen:
    extra = ["--threads", str(threads)] if threads else []
    process = subprocess.Popen([sys.executable, "-m", "maxsim.cli", "serve", str(index), "--host", HOST,
                                "--port", str(port), "--readers", str(readers), *extra])
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise SystemExit(f"maxsim serve exited with status {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("maxsim serve did not answer /health within 300 s")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.5)


async def run_level(url: str, queries: list[str], clients: int, duration: float, max_requests: int,
                    hybrid: bool) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    stop = time.monotonic() + duration

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.monotonic() < stop and sent < max_requests:
            query = queries[sent % len(queries)]
            sent += 1
            start = time.perf_counter()
            try:
                response = await http.post("/search", json={"queries": [query], "k": 10, "hybrid": hybrid})
                if response.status_code != 200 or len(response.json()["results"][0]) != 10:
                    errors.append(f"{response.status_code}: {response.text[:120]}")
                    continue
            except httpx.HTTPError as error:
                errors.append(repr(error))
                continue
            latencies.append(time.perf_counter() - start)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "first_error": errors[:1],
            "seconds": elapsed, "rps": len(latencies) / elapsed, "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=WORK / "cranfield-default")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per client count.")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Requests per client count, at most.")
    parser.add_argument("--readers", type=int, default=2, help="Search workers (maxsim serve --readers).")
    parser.add_argument("--threads", type=int, help="Torch threads per search (maxsim serve --threads; "
                                                     "default: its default, cores / readers).")
    parser.add_argument("--hybrid", action="store_true", help="Hybrid (BM25 + MaxSim) searches.")
    parser.add_argument("--output", type=Path, help="Also write the markdown report here.")
    args = parser.parse_args()
    load_before = load_average()
    if not args.index.exists():
        build_index(args.index)
    queries = [json.loads(line)["text"] for line in open(SHARED / "data" / "cranfield" / "queries.jsonl")]
    port = free_port()
    process = start_server(args.index, port, args.readers, args.threads)
    url = f"http://{HOST}:{port}"
    try:
        stats = httpx.get(f"{url}/stats").json()
        idle_rss = memory_kib(process.pid)[0]
        asyncio.run(run_level(url, queries, 1, min(5.0, args.duration), 50, args.hybrid))  # warm-up
        rows, results = [], []
        for clients in args.clients:
            result = asyncio.run(run_level(url, queries, clients, args.duration, args.max_requests, args.hybrid))
            rss, peak = memory_kib(process.pid)
            print(json.dumps({**result, "rss_mib": rss / 1024, "peak_rss_mib": peak / 1024}), flush=True)
            results.append(result)
            rows.append([clients, result["requests"], f"{result['seconds']:.0f}", f"{result['rps']:.1f}",
                         f"{result['p50']:.0f}", f"{result['p95']:.0f}", f"{result['max']:.0f}", result["errors"],
                         f"{rss / 1024:.0f}", f"{peak / 1024:.0f}"])
    finally:
        process.terminate()
        process.wait(timeout=60)
    command = "python bench/service.py " + " ".join(sys.argv[1:])
    report = "\n".join([
        f"Command: `{command}`", "",
        f"Index: {stats['documents']} documents, {stats['tokens']} token vectors, model {stats['model']!r}, "
        f"index {stats['kind']}, {stats['bytes_on_disk'] / 2**20:.0f} MiB on disk; "
        f"{'hybrid' if args.hybrid else 'MaxSim'} search, k=10, one query per request; "
        f"server: {args.readers} readers x {args.threads or 'default'} torch threads; "
        f"server RSS idle after load: {idle_rss / 1024:.0f} MiB.",
        machine_line(load_before), "",
        markdown_table(["clients", "requests", "s", "requests/s", "p50 ms", "p95 ms", "max ms", "errors",
                        "RSS MiB", "peak RSS MiB"], rows),
    ])
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")
        plot_levels(results, args.output.with_suffix(".png"), f"maxsim serve, {stats['documents']} documents, "
                    f"load average {load_before} at start")


def plot_levels(results: list[dict], path: Path, title: str) -> None:
    """Throughput and latency against the number of concurrent clients, next to the table."""
    clients = [r["clients"] for r in results]
    save_plot(path, [
        {"title": "throughput", "xlabel": "concurrent clients", "ylabel": "requests / s", "logx": True,
         "series": {"requests/s": list(zip(clients, [r["rps"] for r in results]))}},
        {"title": "latency", "xlabel": "concurrent clients", "ylabel": "ms", "logx": True, "logy": True,
         "series": {p: list(zip(clients, [r[p] for r in results])) for p in ("p50", "p95")}},
    ], title)


if __name__ == "__main__":
    main()
