"""Ranking quality per collection: BM25, exact MaxSim, hybrid RRF and hybrid convex fusion, each with and
without ColBERT-PRF, in float32 and in the default precision, side by side.

    python -P bench/quality.py [--collections cranfield,msmarco-kd-flagembedding,...] [--dtypes float32,auto]
                               [--tune] [--alpha A] [--limit N]

Collections (the number of judged queries is printed with each): Cranfield (1,400 abstracts, "title
text") with its queries split by position into a fit half (even positions: the only queries anything
is tuned on, ``--tune``) and a report half (odd); the two KD samples and the SPLADE toy triples of
tests/fixtures/data as small collections (each query against all of the set's documents, label 1
relevant); two synthetic long-document sets (tests/long_documents.py: reports of Cranfield abstracts
under Markdown headings, each holding the top-graded answer of one Cranfield query deep inside;
"long-40x10": 40 reports of 10 sections, "long-80x5": 80 of 5), searched through passages. Every
system is ``Retriever.search`` on an exact index (hybrid BM25 kept), the model
``MultiVectorEncoder.default()`` with ``dtype`` float32 or "auto" (the default: OpenVINO bfloat16 on
CPUs with AMX / AVX512-BF16). nDCG@10 graded (``maxsim.evaluation``); ms/query = wall time of searching
all queries of the collection as one batch, query encoding included, divided by their number.
``--tune``: choose convex fusion's alpha on Cranfield's fit half (float32, grid 0..1 step 0.05) and
use it; else ``--alpha`` or the library's ``DEFAULT_ALPHA``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from maxsim import MultiVectorEncoder
from maxsim.evaluation import load_beir_folder
from maxsim.evaluation.fusion import tune_alpha
from maxsim.evaluation.loaders import document_text
from maxsim.evaluation.metrics import ndcg_at_k, per_query_metrics
from maxsim.search import Retriever
from maxsim.search.fusion import DEFAULT_ALPHA, FUSION_DEPTH, dense_floor

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # after maxsim: bench/maxsim.py must not shadow it
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from common import SHARED, markdown_table  # noqa: E402
from encode import kd_collection  # noqa: E402
from long_documents import long_collection  # noqa: E402

SYSTEMS = {  # row -> Retriever.search keywords (None: BM25 alone)
    "BM25": None,
    "exact MaxSim": {},
    "exact + PRF": {"prf": True},
    "hybrid RRF": {"hybrid": True, "fusion": "rrf"},
    "hybrid RRF + PRF": {"hybrid": True, "fusion": "rrf", "prf": True},
    "hybrid convex": {"hybrid": True, "fusion": "convex"},
    "hybrid convex + PRF": {"hybrid": True, "fusion": "convex", "prf": True},
}
LONG = {"long-40x10": (40, 10, 0), "long-80x5": (80, 5, 1)}


def cranfield() -> tuple[dict, dict]:
    queries, corpus, qrels = load_beir_folder(SHARED / "data" / "cranfield")
    judged = [q for q in queries if q in qrels]
    halves = {"cranfield-fit": judged[0::2], "cranfield-report": judged[1::2]}
    return ({d: document_text(v) for d, v in corpus.items()},
            {name: ({q: queries[q] for q in ids}, {q: qrels[q] for q in ids}) for name, ids in halves.items()})


def collection(name: str) -> tuple[dict, dict]:
    """name -> (corpus {id: text}, {query set name: (queries, qrels)})."""
    if name == "cranfield":
        return cranfield()
    if name in LONG:
        documents, sections, seed = LONG[name]
        long = long_collection(documents, sections=sections, seed=seed, queries_from="cranfield")
        return long.documents, {name: (long.queries, {q: {d: 1} for q, d in long.answers.items()})}
    queries, corpus, qrels = kd_collection(SHARED / "data" / name)
    return corpus, {name: ({q: queries[q] for q in qrels}, qrels)}


def ndcg(rankings: dict, qrels: dict) -> float:
    values = per_query_metrics(rankings, qrels, {"ndcg": (ndcg_at_k, 10)})
    return sum(v["ndcg"] for v in values.values()) / len(values)


def measure(retriever, sets: dict, alpha: float) -> dict:
    """{(query set, system): (nDCG@10, ms per query)}."""
    out = {}
    for set_name, (queries, qrels) in sets.items():
        ids, texts = list(queries), list(queries.values())
        for system, options in SYSTEMS.items():
            start = time.perf_counter()
            if options is None:
                with retriever.versions.reading() as (snap, _):
                    hits = retriever.bm25.get(snap.bm25, snap.all_texts).top(texts, 10)
            else:
                extra = {"alpha": alpha} if options.get("fusion") == "convex" else {}
                hits = [[(h.id, h.score) for h in found] for found in retriever.search(texts, k=10, **options,
                                                                                              **extra)]
            seconds = time.perf_counter() - start
            out[set_name, system] = (ndcg(dict(zip(ids, hits)), qrels), 1000 * seconds / len(ids))
            print(f"  {set_name} {system}: {out[set_name, system][0]:.4f} ({out[set_name, system][1]:.0f} ms/q)",
                  flush=True)
    return out


def tuned(retriever, queries: dict, qrels: dict) -> float:
    ids, texts = list(queries), list(queries.values())
    dense = retriever.search(texts, k=FUSION_DEPTH)
    with retriever.versions.reading() as (snap, _):
        lexical = retriever.bm25.get(snap.bm25, snap.all_texts).top(texts, FUSION_DEPTH)
    floors = [dense_floor(v) for v in retriever.model.encode_query(texts)]
    dense = {q: [(h.id, h.score) for h in found] for q, found in zip(ids, dense)}
    lexical = dict(zip(ids, lexical))
    alpha, means = tune_alpha(dense, lexical, qrels, dict(zip(ids, floors)))
    _, zero_floor = tune_alpha(dense, lexical, qrels)  # the MaxSim minimum taken as 0 instead: for comparison
    print(f"\nconvex fusion on cranfield-fit ({len(ids)} queries), nDCG@10 per alpha:\n")
    print(markdown_table(["alpha", *map(str, means)], [["TMM (MaxSim min -Σ‖q‖)", *(f"{v:.4f}" for v in means.values())],  # noqa: E501
                                             ["MaxSim min taken as 0", *(f"{v:.4f}" for v in zero_floor.values())]]))
    print(f"\nchosen alpha: {alpha}\n", flush=True)
    return alpha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ["cranfield", "msmarco-kd-flagembedding", "nq-kd-flagembedding", "msmarco-triples-splade-toy", *LONG]
    parser.add_argument("--collections", default=",".join(names))
    parser.add_argument("--dtypes", default="float32,auto")
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--limit", type=int, default=None, help="first N queries of each query set (quick runs)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    dtypes, alpha, results, sizes = args.dtypes.split(","), args.alpha, {}, {}
    for name in args.collections.split(","):
        corpus, sets = collection(name)
        sets = {s: (dict(list(q.items())[: args.limit]), r) for s, (q, r) in sets.items()}
        for dtype in dtypes:
            model = MultiVectorEncoder.default(device="cpu", dtype=dtype)
            print(f"{name}: {len(corpus)} documents, dtype {dtype} ({model.precision} via "
                  f"{model.auto_backend or model.backend})", flush=True)
            with tempfile.TemporaryDirectory() as folder:
                with Retriever.create(Path(folder) / "r", model, hybrid=True, model_name="default") as retriever:
                    retriever.add(list(corpus.values()), ids=list(corpus))
                    if args.tune and name == "cranfield" and dtype == dtypes[0]:
                        alpha = tuned(retriever, *sets["cranfield-fit"])
                    for key, value in measure(retriever, sets, alpha).items():
                        results[(*key, dtype)] = value
        sizes.update({s: (len(q), len(corpus)) for s, (q, _) in sets.items()})
    report(results, sizes, dtypes, alpha)


def report(results: dict, sizes: dict, dtypes: list[str], alpha: float) -> None:
    first, last = dtypes[0], dtypes[-1]
    print(f"\nnDCG@10 per collection (convex fusion alpha = {alpha}); {first} | {last} (difference) | ms/query in "
          f"{last}\n")
    for set_name, (queries, documents) in sizes.items():
        rows = []
        for system in SYSTEMS:
            (exact, _), (fast, ms) = results[set_name, system, first], results[set_name, system, last]
            rows.append([system, f"{exact:.4f}", f"{fast:.4f} ({fast - exact:+.4f})", f"{ms:.0f}"])
        print(f"{set_name}: {queries} queries, {documents} documents\n")
        print(markdown_table(["system", f"nDCG@10 {first}", f"nDCG@10 {last}", "ms/query"], rows) + "\n")
    print(f"\n{last}, side by side (nDCG@10)\n")
    header = [f"{s} ({q} q)" for s, (q, _) in sizes.items()]
    print(markdown_table(["system", *header], [[system, *(f"{results[s, system, last][0]:.4f}" for s in sizes)]
                                               for system in SYSTEMS]))
    print(f"\ntorch {torch.__version__}, 2 threads, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
