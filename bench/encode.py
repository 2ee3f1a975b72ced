"""Encoding throughput and quality: maxsim (default, float32, mixed, ONNX Runtime / OpenVINO backends)
vs sentence-transformers 6 float32.

Speed model: all-MiniLM-L6-v2 + seeded Dense 384->128 + punctuation skiplist + Normalize, "[Q] "/"[D] "
prompts, queries expanded to 32, documents cut at 180 tokens; saved by maxsim, loaded by both.
Data: Cranfield (1400 documents, 225 queries). Batch 32, 2 threads, CPU. Each round runs every
system once, in turn (best of N rounds), so load from other processes hits all alike.

Backends (skipped when their package is missing, or with ``--no-backends``): ONNX Runtime float32,
OpenVINO float32 and OpenVINO bfloat16 (``dtype="mixed"``:
OpenVINO's own default precision hint on CPUs with AMX or AVX512-BF16). Exports go to a temporary
cache, outside the timings.

Quality (``--quality``): nDCG@10 of ``MultiVectorEncoder.default()`` in float32 (the reference),
the default (``backend="auto", dtype="auto"``), torch ``dtype="mixed"`` and each backend on every
collection of tests/fixtures/data: Cranfield (graded qrels), the two KD sets (each query against
all of the set's documents, label 1 = relevant) and the SPLADE triples (all positives and negatives
as the corpus, the positive relevant); plus the max abs vector difference vs float32.

    python -P bench/encode.py [--repeats 3] [--limit N] [--quality] [--quality-only] [--no-backends]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import string
import sys
import tempfile

import numpy as np
import torch

from maxsim import Dense, MultiVectorEncoder, MultiVectorMask, Normalize, Transformer
from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder
from maxsim.models.default import minilm_folder
from maxsim.models.precision import cpu_flags

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # after maxsim: bench/maxsim.py must not shadow it
from common import SHARED, best_of, cranfield_texts, load_average, machine_line, markdown_table  # noqa: E402


def build_model(folder: str) -> None:
    torch.manual_seed(0)
    transformer = Transformer.from_pretrained(minilm_folder(), query_length=32, document_length=180,
                                              query_expansion={"strategy": "fixed", "attend": False, "length": 32})
    model = MultiVectorEncoder(modules=[transformer, Dense(384, 128), MultiVectorMask(list(string.punctuation)),
                                        Normalize()], prompts={"query": "[Q] ", "document": "[D] "}, device="cpu",
                               dtype="float32")
    model.save(folder)


BACKENDS = {  # row name -> MultiVectorEncoder keywords
    "maxsim onnx float32 (ONNX Runtime)": {"backend": "onnx"},
    "maxsim openvino float32": {"backend": "openvino", "dtype": "float32"},
    "maxsim openvino bf16 (dtype=mixed: its default hint on AMX)": {"backend": "openvino", "dtype": "mixed"},
}
RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}


def backend_systems(load, cache: str, enabled: bool) -> dict:
    """{row name: load(**keywords)} for the backends whose runtime is installed (a note for the others)."""
    systems = {}
    for name, keywords in BACKENDS.items() if enabled else ():
        runtime = RUNTIMES[keywords["backend"]]
        if importlib.util.find_spec(runtime) is None:
            print(f"{name}: skipped, {runtime} is not installed (pip install -e '.[onnx,openvino]')")
            continue
        systems[name] = load(**keywords, backend_options={"cache_dir": cache})
    return systems


def max_diff(a, b) -> float:
    assert [x.shape for x in a] == [tuple(y.shape) for y in b], "token counts differ"
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


def speed(args) -> None:
    from sentence_transformers import MultiVectorEncoder as STEncoder

    docs, queries = cranfield_texts()
    docs, queries = docs[: args.limit], queries[: args.limit]
    with tempfile.TemporaryDirectory() as folder:
        build_model(folder)
        systems = {"sentence-transformers 6.2 float32 (reference)": STEncoder(folder, device="cpu"),
                   "maxsim float32": MultiVectorEncoder(folder, device="cpu", dtype="float32"),
                   "maxsim default (backend=auto, dtype=auto)": MultiVectorEncoder(folder, device="cpu"),
                   "maxsim torch dtype=mixed (bfloat16 autocast)": MultiVectorEncoder(
                       folder, device="cpu", dtype="mixed", backend="torch")}
        if args.bf16:
            systems["maxsim dtype=bfloat16 (whole model cast)"] = MultiVectorEncoder(folder, device="cpu",
                                                                                      dtype="bfloat16", backend="torch")
        systems.update(backend_systems(lambda **kw: MultiVectorEncoder(folder, device="cpu", **kw),
                                       os.path.join(folder, "cache"), args.backends))
    names = list(systems)
    auto = systems["maxsim default (backend=auto, dtype=auto)"]
    resolved = f"{auto.precision} via {auto.auto_backend or auto.backend}"
    for task, texts in (("documents", docs), ("queries", queries)):
        calls = {name: _encoder(model, task, texts, args.batch_size) for name, model in systems.items()}
        outputs = {name: call() for name, call in calls.items()}
        times = {name: [] for name in names}
        for _ in range(args.repeats):
            for name in names:
                times[name].append(best_of(calls[name], 1))
        rates = {name: len(texts) / min(t) for name, t in times.items()}
        reference = outputs[names[0]]
        rows = [[name, f"{rates[name]:.1f}/s", f"{rates[name] / rates[names[0]]:.2f}x",
                 f"{max_diff(outputs[name], reference):.1e}"] for name in names]
        print(f"\n{task} ({len(texts)} texts; the default resolved to {resolved!r})\n")
        print(markdown_table([task, "rate", "vs reference", "max abs diff vs reference"], rows))


def _encoder(model, task: str, texts: list[str], batch_size: int):
    method = model.encode_document if task == "documents" else model.encode_query
    if isinstance(model, MultiVectorEncoder):
        return lambda: method(texts, batch_size=batch_size)
    return lambda: method(texts, batch_size=batch_size, convert_to_numpy=True)


def kd_collection(folder) -> tuple[dict, dict, dict]:
    """A KD/triples set -> (queries, corpus, qrels): documents deduplicated by text, label 1 relevant."""
    rows = []
    for name in ("train.jsonl", "triples.jsonl"):
        path = folder / name
        if path.exists():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    doc_ids, queries, qrels = {}, {}, {}
    for row in rows:
        pairs = (zip(row["documents"], row["labels"]) if "documents" in row
                 else [(row["positive"], 1), (row["negative"], 0)])
        qid = queries.setdefault(row["query"], f"q{len(queries)}")
        for text, label in pairs:
            did = doc_ids.setdefault(text, f"d{len(doc_ids)}")
            if label == 1:
                qrels.setdefault(qid, {})[did] = 1
    return {v: k for k, v in queries.items()}, {v: k for k, v in doc_ids.items()}, qrels


def collections() -> dict:
    data = SHARED / "data"
    found = {"cranfield": load_beir_folder(data / "cranfield")}
    for folder in sorted(p for p in data.iterdir() if p.is_dir() and p.name != "cranfield"):
        found[folder.name] = kd_collection(folder)
    return found


def quality(args) -> None:
    with tempfile.TemporaryDirectory() as cache:
        systems = {"float32": MultiVectorEncoder.default(device="cpu", dtype="float32"),
                   "default (auto)": MultiVectorEncoder.default(device="cpu"),
                   "torch mixed": MultiVectorEncoder.default(device="cpu", dtype="mixed", backend="torch")}
        systems.update(backend_systems(lambda **kw: MultiVectorEncoder.default(device="cpu", **kw), cache,
                                       args.backends))
    names = list(systems)
    rows, diffs = [], {name: 0.0 for name in names}
    for collection, (queries, corpus, qrels) in collections().items():
        ev = InformationRetrievalEvaluator(queries, corpus, qrels, name=collection, show_progress_bar=False)
        scores = {name: ev(model)[ev.primary_metric] for name, model in systems.items()}
        sample, texts = ev.documents[:200], list(ev.queries.values())
        exact = systems["float32"]
        reference = exact.encode_document(sample), exact.encode_query(texts)
        for name, model in systems.items():
            diffs[name] = max(diffs[name], max_diff(model.encode_document(sample), reference[0]),
                              max_diff(model.encode_query(texts), reference[1]))
        rows.append([collection, len(ev.queries), len(ev.documents), f"{scores['float32']:.4f}"]
                    + [f"{scores[n]:.4f} ({scores[n] - scores['float32']:+.4f})" for n in names[1:]])
        print(rows[-1], flush=True)
    print("\nnDCG@10 of MultiVectorEncoder.default(): float32 (the reference), then each path (difference)\n")
    print(markdown_table(["collection", "queries", "documents", *names], rows))
    print("\nmax abs vector difference vs float32 (all queries and the first 200 documents of every collection)\n")
    print(markdown_table(["path", "max abs diff"], [[n, f"{diffs[n]:.1e}"] for n in names[1:]]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents and queries")
    parser.add_argument("--bf16", action="store_true", help="add maxsim with the whole model cast to bfloat16")
    parser.add_argument("--quality", action="store_true", help="also the nDCG@10 table (slow)")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--no-backends", dest="backends", action="store_false",
                        help="leave out the ONNX Runtime / OpenVINO rows")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = load_average()
    if not args.quality_only:
        speed(args)
    if args.quality or args.quality_only:
        quality(args)
    flags = sorted(set(cpu_flags()) & {"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    versions = {m: getattr(sys.modules.get(m), "__version__", "-") for m in ("onnxruntime", "openvino")}
    print(f"\ntorch {torch.__version__}, {versions}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"python {sys.version.split()[0]}, CPU flags {flags}, cuda {torch.cuda.is_available()}.")
    print(machine_line(load))


if __name__ == "__main__":
    main()
