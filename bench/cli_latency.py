"""Latency of one ``maxsim search`` from the command line: in-process (loads the model every time)
against a running ``maxsim serve`` (``--server URL``, or found through the folder's discovery file).

    python bench/cli_latency.py [--index bench/_work/cli-latency] [--data src/maxsim/data/cranfield]
                                [--queries 10] [--output bench/results/cli_latency.md]

Builds the index (default model, exact, hybrid) from ``--data`` if ``--index`` does not exist,
starts ``maxsim serve`` on 127.0.0.1, then times, per query, a fresh ``maxsim search ... --json``
process in each mode (wall time of the whole command: interpreter start, imports, search, output),
and the HTTP part alone (``remote_hits`` in this process). Writes the table and a bar chart
(``--output`` with ``.png``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, WORK, load_average, machine_line, markdown_table, save_plot  # noqa: E402
from maxsim.cli.remote import call  # noqa: E402
from maxsim.cli.search import remote_hits  # noqa: E402
from service import HOST, free_port, start_server  # noqa: E402


def build_index(folder: Path, data: Path) -> None:
    print(f"building {folder} from {data} with the default model (once)", flush=True)
    subprocess.run([sys.executable, "-m", "maxsim.cli", "index", str(data), "--output", str(folder),
                    "--model", "default", "--index", "exact", "--hybrid"], check=True)


def command_ms(args: list[str]) -> float:
    """Wall time (ms) of one ``maxsim`` process; fails loudly if it fails."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "maxsim.cli", *args], check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def call_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(index: Path, url: str, queries: list[str]) -> dict[str, list[float]]:
    search = ["search", str(index)]
    modes = {
        "maxsim --help (interpreter + imports)": lambda q: command_ms(["--help"]),
        "maxsim search --local (loads the model)": lambda q: command_ms([*search, q, "--json", "--local"]),
        "maxsim search --server URL": lambda q: command_ms([*search, q, "--json", "--server", url]),
        "maxsim search (server discovered)": lambda q: command_ms([*search, q, "--json"]),
        "HTTP only (search + explain per hit, in-process client)":
            lambda q: call_ms(lambda: remote_hits(url, q, 10, False, None, None)),
    }
    return {mode: [fn(q) for q in queries] for mode, fn in modes.items()}


def report(times: dict[str, list[float]], command: str, load: str, documents: int) -> str:
    local = statistics.median(times["maxsim search --local (loads the model)"])
    rows = [[mode, len(ms), f"{statistics.median(ms):.0f}", f"{min(ms):.0f}", f"{max(ms):.0f}",
             f"{statistics.median(ms) / local:.3f}"] for mode, ms in times.items()]
    return "\n".join([
        f"Command: `{command}`", "",
        f"Index: {documents} documents, default model, exact; k=10 (default), one query per command, "
        "the same queries in every mode.", "", machine_line(load), "",
        markdown_table(["mode", "runs", "median ms", "min ms", "max ms", "median / --local"], rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=WORK / "cli-latency")
    parser.add_argument("--data", type=Path, default=ROOT / "src" / "maxsim" / "data" / "cranfield")
    parser.add_argument("--queries", type=int, default=10, help="Queries timed per mode.")
    parser.add_argument("--output", type=Path, help="Write the markdown table here (and the plot as .png).")
    args = parser.parse_args()
    load = load_average()
    if not args.index.exists():
        build_index(args.index, args.data)
    texts = [json.loads(line)["text"] for line in open(args.data / "queries.jsonl", encoding="utf-8")]
    queries = [texts[i % len(texts)] for i in range(args.queries)]
    port = free_port()
    process = start_server(args.index, port, readers=1, threads=None)
    url = f"http://{HOST}:{port}"
    try:
        remote_hits(url, queries[0], 10, False, None, None)  # warm-up
        times = measure(args.index, url, queries)
        documents = call(url, "/stats")["documents"]
    finally:
        process.terminate()
        process.wait(timeout=60)
    text = report(times, "python bench/cli_latency.py " + " ".join(sys.argv[1:]), load, documents)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        save_plot(args.output.with_suffix(".png"), [{
            "title": "one `maxsim search` command", "ylabel": "median wall time, ms", "kind": "bar", "logy": True,
            "series": {mode.split(" (")[0]: [(0, statistics.median(ms))] for mode, ms in times.items()}}])


if __name__ == "__main__":
    main()
