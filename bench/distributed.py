"""Ray scale-out benchmark: documents/s of the Ray build with 1 and 2 workers and of the plain build.

    python -P bench/distributed.py                    # 300 Cranfield documents, default model
    python -P bench/distributed.py --docs 1400 --repeats 2
    python -P bench/distributed.py --docs 4200 --skip-two-nodes   # Cranfield 3 times (new ids): a longer job

Side by side in one run, interleaved (plain, Ray 1 worker, Ray 2 workers; ``--repeats`` rounds, the
best of each kept): every path does the whole job (load the model, split, encode, write an exact
index with texts) at 1 torch thread per worker.
- plain: what ``maxsim index`` does, in this process (``Retriever.create`` + ``add``);
- Ray N workers: ``build_collection`` on a local Ray cluster (2 CPUs, started once before the
  rounds), N encoder actors, N shards. Times include starting the actors and loading their model;
"first row back" is when the first row of documents (``maxsim.distributed.encode.row_size``) had
come back: the start-up plus one row's encoding. Then a 2-node run: ``ray start --head`` and a second
``ray start --address`` on this machine (127.0.0.1, 1 CPU each) and ``maxsim index --ray --address`` in
a subprocess, to show the cluster
path; the nodes are ended by process group when it is done. Results: bench/results/distributed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
from common import SHARED, cpu_model, markdown_table  # noqa: E402

WORK = ROOT / "bench" / "_work" / "distributed"
RESULTS = ROOT / "bench" / "results" / "distributed.md"
PORT = 6391


def corpus_file(n: int) -> Path:
    """The first ``n`` Cranfield documents; past its 1,400, Cranfield again with new ids (``<id>-r<k>``)."""
    lines = (SHARED / "data" / "cranfield" / "corpus.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines if x.strip()]
    picked = []
    for i in range(n):
        row = dict(rows[i % len(rows)])
        if i >= len(rows):
            row["_id"] = f"{row['_id']}-r{i // len(rows)}"
        picked.append(row)
    path = WORK / f"cranfield-{n}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in picked))
    return path


def plain(corpus: Path, model: str) -> float:
    """Seconds for load model + Retriever.create + add at 1 torch thread."""
    import torch

    from maxsim.io import read_corpus
    from maxsim.models.loading import load_model
    from maxsim.search import Retriever

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = WORK / "plain"
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        docs = read_corpus(corpus)
        with Retriever.create(folder, load_model(model), index="exact", model_name=model) as r:
            r.add(docs.texts, ids=docs.ids, metadata=docs.metadata)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def on_ray(corpus: Path, model: str, workers: int) -> tuple[float, float]:
    """(seconds of the whole build, seconds until the first row of documents came back)."""
    from maxsim.distributed import build_collection

    folder = WORK / f"ray-{workers}"
    shutil.rmtree(folder, ignore_errors=True)
    first: list = []

    def progress(done, total, row):
        if not first:
            first.append(time.perf_counter())
    start = time.perf_counter()
    build_collection(corpus, folder, model=model, index="exact", workers=workers, shards=workers, progress=progress)
    return time.perf_counter() - start, first[0] - start


def search_latency(n_queries: int = 30) -> dict:
    """p50 ms of single dense queries on the plain folder vs the 2-shard collection (same documents)."""
    import numpy as np

    from maxsim.search import Retriever

    lines = (SHARED / "data" / "cranfield" / "queries.jsonl").read_text().splitlines()
    queries = [json.loads(x)["text"] for x in lines]
    out = {}
    for name in ("plain", "ray-2"):
        with Retriever.open(WORK / name) as r:
            r.search(queries[0])
            times = []
            for q in queries[:n_queries]:
                t = time.perf_counter()
                r.search(q, k=10)
                times.append(time.perf_counter() - t)
        out[name] = float(np.median(times) * 1000)
    return out


def two_nodes(corpus: Path, model: str) -> dict:
    """A head and a second node (1 CPU each) on 127.0.0.1; ``maxsim index --ray`` with 2 workers."""
    base = ["ray", "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1"]
    nodes = [subprocess.Popen(base + ["--head", f"--port={PORT}", "--include-dashboard=false"],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(15)
        nodes.append(subprocess.Popen(base + [f"--address=127.0.0.1:{PORT}"], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(15)
        folder = WORK / "two-nodes"
        shutil.rmtree(folder, ignore_errors=True)
        probe = (f"import ray, json; ray.init(address='127.0.0.1:{PORT}', log_to_driver=False); "
                 "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))")
        alive = []
        for _ in range(12):  # the nodes can take a while to come up
            run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
            lines = run.stdout.strip().splitlines()
            alive = json.loads(lines[-1]) if run.returncode == 0 and lines else []
            if len(alive) >= 2:
                break
            time.sleep(10)
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "maxsim.cli", "index", str(corpus), "--output", str(folder),
                              "--model", model, "--no-hybrid", "--ray", "--address", f"127.0.0.1:{PORT}",
                              "--workers", "2"], capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - start
        return {"nodes": len(alive), "exit": run.returncode, "seconds": seconds,
                "output": [line.replace(str(ROOT) + os.sep, "").replace(sys.executable, "python")
                           for line in (run.stdout + run.stderr).strip().splitlines()[-1:]]}
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(timeout=120)


def append_two_nodes(corpus: Path, a) -> None:
    latency, load = search_latency(), os.getloadavg()
    nodes = two_nodes(corpus, a.model)
    lines = [f"- rerun {time.strftime('%H:%M UTC', time.gmtime())} (`--two-nodes-only`, load {load[0]:.1f}): search "
             f"p50 one index {latency['plain']:.1f} ms, 2 shards {latency['ray-2']:.1f} ms; 2-node cluster: "
             f"{nodes['nodes']} nodes alive, `maxsim index --ray --address` exit {nodes['exit']}, "
             f"{nodes['seconds']:.1f} s including start-up: {nodes['output']}"]
    RESULTS.write_text(RESULTS.read_text() + "\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=300)
    p.add_argument("--model", default="default")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--skip-two-nodes", action="store_true")
    p.add_argument("--two-nodes-only", action="store_true",
                   help="rerun the search latency and 2-node parts; append them to the last report")
    a = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = corpus_file(a.docs)
    if a.two_nodes_only:
        return append_two_nodes(corpus, a)
    import ray

    loads = {"start": os.getloadavg()}
    os.environ.setdefault("RAY_worker_niceness", "0")  # as maxsim.distributed.encode.connect does
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    times: dict[str, list[float]] = {"plain": [], "ray1": [], "ray2": []}
    first_row: dict[str, list[float]] = {"ray1": [], "ray2": []}
    for _ in range(a.repeats):
        times["plain"].append(plain(corpus, a.model))
        for name, workers in (("ray1", 1), ("ray2", 2)):
            seconds, first_back = on_ray(corpus, a.model, workers)
            times[name].append(seconds)
            first_row[name].append(first_back)
        print(json.dumps(times), flush=True)
    latency = search_latency()
    ray.shutdown()
    loads["after single-node runs"] = os.getloadavg()
    nodes = None if a.skip_two_nodes else two_nodes(corpus, a.model)
    loads["end"] = os.getloadavg()
    best = {k: min(v) for k, v in times.items()}
    rate = {k: a.docs / v for k, v in best.items()}
    first = {k: min(v) for k, v in first_row.items()}
    rows = [["plain (`maxsim index`, 1 thread)", f"{best['plain']:.1f}", f"{rate['plain']:.2f}", "1.00", ""],
            *[[f"Ray, {n} worker{'s' * (n > 1)}", f"{best[k]:.1f}", f"{rate[k]:.2f}", f"{rate[k] / rate['plain']:.2f}",
               f"{first[k]:.1f}"] for k, n in (("ray1", 1), ("ray2", 2))]]
    dtype = f"MAXSIM_DTYPE={os.environ['MAXSIM_DTYPE']} " if os.environ.get("MAXSIM_DTYPE") else ""
    lines = ["# Ray scale-out (`bench/distributed.py`)", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `{dtype}python -P bench/distributed.py "
             f"{' '.join(sys.argv[1:])}`; {a.docs} Cranfield documents, model {a.model!r}, exact index, 1 torch "
             f"thread per worker, rows interleaved, best of {a.repeats} round(s). {cpu_model()}, {os.cpu_count()} "
             "cores; load averages (1/5/15 min): "
             + "; ".join(f"{k} {v[0]:.1f}/{v[1]:.1f}/{v[2]:.1f}" for k, v in loads.items()) + ".", "",
             markdown_table(["build", "seconds", "documents/s", "vs plain", "first row back (s)"], rows), "",
             f"- 2 workers vs 1 worker: {rate['ray2'] / rate['ray1']:.2f}x (target >= 1.7x).",
             f"- Ray 1 worker vs plain: {rate['ray1'] / rate['plain']:.2f}x (target: within 15 %, >= 0.85x).",
             f"- all rounds (s): {json.dumps(times)}; first row back (s): {json.dumps(first_row)}",
             f"- search, single dense queries k=10, p50: one index {latency['plain']:.1f} ms, 2 shards fanned out "
             f"in this process {latency['ray-2']:.1f} ms ({latency['ray-2'] / latency['plain']:.2f}x)."]
    if nodes:
        lines.append(f"- 2-node cluster (head + second `ray start` on 127.0.0.1, 1 CPU each): {nodes['nodes']} nodes "
                     f"alive, `maxsim index --ray --address` exit {nodes['exit']}, {nodes['seconds']:.1f} s "
                     f"including start-up: {nodes['output']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
