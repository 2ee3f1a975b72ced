"""Latency of one ``maxsim search`` command on a 400-document index: cold (a fresh process, the
folder's model frozen by an earlier search), the first search of a model (builds it, then freezes
it), through a running ``maxsim serve`` (found by the folder's discovery file, or ``--server URL``),
beside ``python -c "import maxsim"`` and the search with its explanations inside a warm process.

    python bench/cli_latency.py [--index bench/_work/cli-latency] [--runs 5] [--output bench/results/cli_latency.md]

Builds the index (default model, exact, hybrid) from the shipped Cranfield abstracts if ``--index``
does not exist. Each command is a fresh process timed from start to exit (wall) with its CPU time
(user + system, from ``getrusage``); one query per command, the 5 shipped queries in turn, k=10,
the table output users see. Targets (idle 2-core machine): cold ``maxsim search`` <= 1.5 s, with a
server running <= 0.3 s (median wall). The machine's load average is printed with the table: wall
times are only comparable on an idle machine; CPU times much less depend on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, WORK, load_average, machine_line, markdown_table, publish  # noqa: E402
from service import HOST, free_port, start_server  # noqa: E402

DATA = ROOT / "src" / "maxsim" / "data" / "cranfield"
TARGETS_MS = {"maxsim search (cold, model frozen)": 1500, "maxsim search (server discovered)": 300}


def build_index(folder: Path) -> None:
    print(f"building {folder} from {DATA} with the default model (once)", flush=True)
    subprocess.run([sys.executable, "-m", "maxsim.cli", "index", str(DATA), "--output", str(folder),
                    "--model", "default", "--index", "exact", "--hybrid"], check=True)


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """(wall ms, CPU ms) of one process; fails loudly if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def forget_frozen(index: Path) -> None:
    """Remove the snapshot of the index's model, so that the next search builds the model again."""
    from maxsim.cli.search import model_source
    from maxsim.models.frozen import snapshot_folder

    folder = snapshot_folder(model_source(index), "mixed")
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def in_process_ms(index: Path, queries: list[str]) -> dict[str, list[tuple[float, float]]]:
    """(wall ms, CPU ms) of the search alone, and of the search with the explanations of its 10 hits
    (what ``maxsim search`` prints), in this process once the collection is open and warm."""
    from maxsim.cli.search import frozen_encoder
    from maxsim.opener import open_collection

    collection = open_collection(index, model=frozen_encoder(index)[0])
    times: dict[str, list] = {"collection.search in a warm process": [],
                              "search + 10 explanations in a warm process": []}
    try:
        for query in [queries[0], *queries]:  # the first is a warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            hits = collection.search(query, k=10)[0]
            searched = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)
            for hit in hits:
                collection.explain(query, hit.id)
            explained = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)
            times["collection.search in a warm process"].append(searched)
            times["search + 10 explanations in a warm process"].append(explained)
    finally:
        collection.close()
    return {mode: pairs[1:] for mode, pairs in times.items()}


def measure(index: Path, queries: list[str], runs: int) -> dict[str, list[tuple[float, float]]]:
    env = {key: value for key, value in os.environ.items() if key != "MAXSIM_DTYPE"}  # dtype="auto", as users run
    cli = [sys.executable, "-m", "maxsim.cli"]
    picks = [queries[i % len(queries)] for i in range(runs)]
    times = {"python -c 'import maxsim'": [timed([sys.executable, "-c", "import maxsim"], env) for _ in picks]}
    times["maxsim search (first search of the model: builds it, freezes it)"] = []
    for query in picks:
        forget_frozen(index)
        times["maxsim search (first search of the model: builds it, freezes it)"].append(
            timed([*cli, "search", str(index), query, "--local"], env))
    times["maxsim search (cold, model frozen)"] = [timed([*cli, "search", str(index), q], env) for q in picks]
    times.update(in_process_ms(index, picks))
    port = free_port()
    process = start_server(index, port, readers=2, threads=None)
    try:
        url = f"http://{HOST}:{port}"
        timed([*cli, "search", str(index), picks[0], "--server", url], env)  # warm-up
        times["maxsim search (server discovered)"] = [timed([*cli, "search", str(index), q], env) for q in picks]
        times["maxsim search --server URL"] = [timed([*cli, "search", str(index), q, "--server", url], env)
                                               for q in picks]
    finally:
        process.terminate()
        process.wait(timeout=60)
    return times


def report(times: dict, command: str, load: str, documents: int) -> str:
    from maxsim.cli.search import frozen_precision

    path = ("dtype auto = OpenVINO at bfloat16, the model frozen after its first search" if frozen_precision()
            else "dtype auto = torch float32 on this CPU: no frozen model, every search builds it")
    rows = []
    for mode, pairs in times.items():
        wall, cpu = [w for w, _ in pairs], [c for _, c in pairs]
        target = TARGETS_MS.get(mode)
        rows.append([mode, len(pairs), f"{statistics.median(wall):.0f}", f"{min(wall):.0f}", f"{max(wall):.0f}",
                     f"{statistics.median(cpu):.0f}", f"<= {target}" if target else "",
                     ("yes" if statistics.median(wall) <= target else "no") if target else ""])
    return "\n".join([
        f"Command: `{command}`", "",
        f"Index: {documents} documents (Cranfield abstracts shipped in the package), default model, exact; k=10, "
        f"one query per command, table output. Encoding: {path}.", "", machine_line(load), "",
        markdown_table(["mode", "runs", "median wall ms", "min", "max", "median CPU ms", "target (idle)", "met"],
                       rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=WORK / "cli-latency")
    parser.add_argument("--runs", type=int, default=5, help="Commands timed per mode (median reported).")
    parser.add_argument("--output", type=Path, help="Also write the markdown table here.")
    args = parser.parse_args()
    os.environ.pop("MAXSIM_DTYPE", None)  # dtype="auto", as users run it
    load = load_average()
    if not args.index.exists():
        build_index(args.index)
    queries = [json.loads(line)["text"] for line in open(DATA / "queries.jsonl", encoding="utf-8")]
    times = measure(args.index, queries, args.runs)
    documents = sum(1 for _ in open(DATA / "corpus.jsonl", encoding="utf-8"))
    text = report(times, "python bench/cli_latency.py " + " ".join(sys.argv[1:]), load, documents)
    publish(text, args.output)


if __name__ == "__main__":
    main()
