"""Index benchmark: ExactIndex and PlaidIndex side by side in one run, and fast-plaid like for like.

    python bench/index.py              # every stage (~2 h on an idle 2-core machine)
    python bench/index.py --quick      # small sizes (~15 min)
    python bench/index.py --only 20k --only real    # some stages

Stages (each adds its rows to bench/_work/index-results.json, the report bench/results/index.md
is rewritten from it by bench/index_report.py):
- ``20k``: ``ClusteredCollection`` of 20,000 documents (2,000 topic centres, token noise 0.6, 30-90
  tokens, 128 dims; 2,000 with --quick): ExactIndex float16, PlaidIndex nbits 2 (the default: no
  copy), ternary, 1 and 4 bits, and nbits 2 with its float16 copy. Bytes per token of the whole
  folder and per tier, build time, recall@10 against exact, and latencies (below); then scoring
  from the codes against decompress-then-score on the same candidates.
- ``real``: Cranfield (225 queries), the nq and msmarco KD samples as corpora (10 queries each),
  encoded with the default model (``index_data``): nDCG@10 of exact and PLAID, recall@10 vs exact,
  k = 10 and 100, which kind ``choose_kind`` picks; the scoring comparison on Cranfield.
- ``100k``: the 20k generator at 100,000 documents (10,000 with --quick): recall@10, bytes, latency.
- ``fastplaid``: fast-plaid 1.7 like for like (``fastplaid_runner.py``, in its own virtualenv:
  ``python3 -m venv bench/_work/fpenv && bench/_work/fpenv/bin/pip install fast-plaid==1.7.0.2110``,
  or ``FASTPLAID_PYTHON``): nbits 2, neither side keeping a copy, fast-plaid given maxsim's
  centroids, the same queries; recall@10 vs exact, latencies, bytes per token of both.
- ``defaults``: the search-settings study of ``index_defaults.py`` (fit and held-out collections).
- ``codecs``: every codec (nbits 1, ternary, 2, 4) on Cranfield and nq-kd over CODEC_SEEDS codec
  seeds: nDCG@10 (what users see) beside recall@10 against exact, and bytes per token.

Latencies (``index_timing.py``): a fresh process opens and warms each index (``Index.warm``, as
``maxsim serve`` does), then times the first pass (every
query once, one per call, never seen, freshly opened index), the warm pass (the same queries again)
and all queries in one call; torch/faiss at ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "bench"))  # after src/: bench/maxsim.py must not shadow the package
import index_data  # noqa: E402
from index_report import write_report  # noqa: E402
from index_timing import measure  # noqa: E402

WORK = ROOT / "bench" / "_work" / "index"
RESULTS = ROOT / "bench" / "results" / "index.md"
STATE = ROOT / "bench" / "_work" / "index-results.json"
FASTPLAID_PYTHON = os.environ.get("FASTPLAID_PYTHON", str(ROOT / "bench" / "_work" / "fpenv" / "bin" / "python"))
CODECS = {"PLAID nbits 2 (default)": {}, "PLAID ternary": {"nbits": "ternary"}, "PLAID nbits 1": {"nbits": 1},
          "PLAID nbits 4": {"nbits": 4}, "PLAID nbits 2 + float16 copy": {"rescore": "float16"}}
CODEC_SEEDS = (0, 1, 2)
EXHAUSTIVE = dict(n_ivf_probe=10**6, centroid_score_threshold=-1e9, n_full_scores=10**6)


def recall_at(hits, truth, k=10) -> float:
    return float(np.mean([len(set(h[:k]) & set(t[:k])) / k for h, t in zip(hits, truth)]))


def synthetic(n: int, n_queries: int, noise: float = 0.6, seed: int = 0):
    """(docs, ids, queries) of the 20k generator at ``n`` documents (n / 10 topic centres)."""
    from maxsim.index.synthetic import ClusteredCollection
    coll = ClusteredCollection(n, dim=128, n_topics=max(8, n // 10), doc_tokens=(30, 90), noise=noise, seed=seed)
    return coll.documents(), [f"s{i}" for i in range(n)], coll.queries(n_queries)


def build(name: str, kind: str, docs, ids, batch: int | None = None, **params):
    """A fresh index under bench/_work/index/ and its build time (s)."""
    from maxsim.index import KINDS
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    index = KINDS[kind].create(folder, docs[0].shape[1], **params)
    t = time.perf_counter()
    step = batch or len(docs)
    for s in range(0, len(docs), step):
        index.add(ids[s: s + step], docs[s: s + step])
    return index, time.perf_counter() - t


def run_fastplaid(docs, queries, centroids, threads: int) -> dict:
    """fast-plaid nbits 2 built on ``centroids`` and searched at its defaults (fastplaid_runner.py)."""
    import subprocess
    stem = WORK / "fp"
    arrays = {"docs": np.concatenate(docs).astype(np.float16), "lens": np.array([len(d) for d in docs]),
              "queries": np.concatenate(queries), "qlens": np.array([len(q) for q in queries]), "centroids": centroids}
    job = {key: str(stem) + f"-{key}.npy" for key in arrays}
    for key, array in arrays.items():
        np.save(job[key], array)
    folder = WORK / "fp-index"
    shutil.rmtree(folder, ignore_errors=True)
    job.update(folder=str(folder), nbits=2, threads=threads, settings=[{}])
    proc = subprocess.run([FASTPLAID_PYTHON, str(ROOT / "bench" / "fastplaid_runner.py"), json.dumps(job)],
                          capture_output=True, text=True)
    shutil.rmtree(folder, ignore_errors=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"fast-plaid failed: {proc.stderr[-3000:]}")
    out = json.loads(line[len("RESULT "):])
    s = out["settings"][0]
    first, warm = np.asarray(s["first"]) * 1000, np.asarray(s["warm"]) * 1000
    return {"build_s": out["build_s"], "bytes": out["bytes"], "hits": s["hits"], "first_ms": first.mean(),
            "warm_ms": warm.mean(), "first_p50": float(np.median(first)), "warm_p50": float(np.median(warm))}


class Bench:
    def __init__(self, args):
        self.args = args
        self.results = json.loads(STATE.read_text()) if args.append and STATE.exists() else {}
        self.results.pop("load", None)  # the list kept before "runs"
        self.start = (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0])
        WORK.mkdir(parents=True, exist_ok=True)

    def save(self, stage: str, rows) -> None:
        self.results[stage] = rows
        self.results.setdefault("runs", {})[stage] = [*self.start, time.strftime("%H:%M", time.gmtime()),
                                                     os.getloadavg()[0]]
        STATE.write_text(json.dumps(self.results, indent=1))
        write_report(self.results, RESULTS, self.args)

    def timings(self, indexes: dict, queries, ks=(10,)) -> dict:
        return measure({name: ix.folder for name, ix in indexes.items()}, queries, ks, self.args.threads)

    # ---------------------------------------------------------------- stages
    def stage_20k(self) -> None:
        n = 2_000 if self.args.quick else 20_000
        docs, ids, queries = synthetic(n, 30 if self.args.quick else 100)
        name = f"synthetic-{n // 1000}k-noise0.6"
        indexes, builds = {}, {}
        indexes["ExactIndex float16"], builds["ExactIndex float16"] = build("exact", "exact", docs, ids)
        for label, params in CODECS.items():
            indexes[label], builds[label] = build(label.split(" (")[0].replace(" ", "-"), "plaid", docs, ids, **params)
        times = self.timings(indexes, queries)
        truth = times["ExactIndex float16"][10]["hits"]
        rows = [self.index_row(name, label, index, builds[label], times[label], truth) for label,
                index in indexes.items()]
        self.save("20k", rows)
        self.save("scoring-20k", self.scoring(name, indexes["PLAID nbits 2 (default)"], queries, truth))
        self.cleanup(indexes)

    def stage_100k(self) -> None:
        n = 10_000 if self.args.quick else 100_000
        docs, ids, queries = synthetic(n, 30 if self.args.quick else 100)
        name = f"synthetic-{n // 1000}k-noise0.6"
        indexes, builds = {}, {}
        for label, kind in (("ExactIndex float16", "exact"), ("PLAID nbits 2 (default)", "plaid")):
            indexes[label], builds[label] = build(kind, kind, docs, ids, batch=10_000)
        del docs
        truth = [[i for i, _ in h] for h in indexes["ExactIndex float16"].search(queries, k=10)]
        times = self.timings({"PLAID nbits 2 (default)": indexes["PLAID nbits 2 (default)"]}, queries)
        exact_times = self.timings({"ExactIndex float16": indexes["ExactIndex float16"]}, queries[:10])
        rows = [self.index_row(name, "ExactIndex float16", indexes["ExactIndex float16"], builds["ExactIndex float16"],
                               exact_times["ExactIndex float16"], truth[:10]),
                self.index_row(name, "PLAID nbits 2 (default)", indexes["PLAID nbits 2 (default)"],
                               builds["PLAID nbits 2 (default)"], times["PLAID nbits 2 (default)"], truth)]
        self.save("100k", rows)
        self.cleanup(indexes)

    def stage_real(self) -> None:
        from maxsim.index import choose_kind
        rows, scoring = [], []
        for coll_name in index_data.NAMES:
            coll = index_data.load(coll_name)
            queries = coll.queries[:30] if self.args.quick else coll.queries
            n_tokens = sum(len(d) for d in coll.docs)
            kind, why = choose_kind(len(coll.docs), n_tokens, coll.docs[0].shape[1])
            indexes = {"ExactIndex float16": build("exact", "exact", coll.docs, coll.ids)[0],
                       "PLAID nbits 2 (default)": build("plaid", "plaid", coll.docs, coll.ids)[0]}
            times = self.timings(indexes, queries, ks=(10, 100))
            truth = times["ExactIndex float16"][10]["hits"]
            for label, index in indexes.items():
                for k in (10, 100):
                    t = times[label][k]
                    rows.append({"collection": coll_name, "index": label, "k": k, "documents": len(coll.docs),
                                 "tokens": n_tokens, "auto": kind, "auto_reason": why,
                                 "ndcg10": index_data.ndcg(t["hits"], coll), "recall10": recall_at(t["hits"], truth),
                                 "bytes_per_token": index.stats()["bytes_per_token"], "open_s": times[label]["open_s"],
                                 "warm_up_s": times[label]["warm_up_s"],
                                 **{key: v for key, v in t.items() if key.endswith("ms") or key.endswith("p50")}})
            if coll_name == "cranfield":
                scoring = self.scoring(coll_name, indexes["PLAID nbits 2 (default)"], queries, truth, coll)
            self.cleanup(indexes)
        self.save("real", rows)
        self.save("scoring-real", scoring)

    def stage_fastplaid(self) -> None:
        if not Path(FASTPLAID_PYTHON).exists():
            return self.save("fastplaid", [{"note": f"fast-plaid not run: {FASTPLAID_PYTHON} missing"}])
        n = 2_000 if self.args.quick else 10_000
        docs, ids, queries = synthetic(n, 30 if self.args.quick else 100, noise=0.35)
        rows = self.like_for_like(f"synthetic-{n // 1000}k-noise0.35", docs, ids, queries)
        coll = index_data.load("cranfield")
        rows += self.like_for_like("cranfield", coll.docs, coll.ids,
                                   coll.queries[:30] if self.args.quick else coll.queries, coll)
        self.save("fastplaid", rows)

    def like_for_like(self, name, docs, ids, queries, coll=None) -> list[dict]:
        """maxsim's default PLAID and fast-plaid nbits 2 on the same centroids and queries, no copy on
        either side (fast-plaid at its search defaults)."""
        indexes = {"ExactIndex float16": build("exact", "exact", docs, ids)[0]}
        indexes["maxsim PLAID nbits 2"], ours_s = build("plaid", "plaid", docs, ids)
        times = self.timings(indexes, queries)
        truth = times["ExactIndex float16"][10]["hits"]
        ours = indexes["maxsim PLAID nbits 2"]
        theirs = run_fastplaid(docs, queries, ours.codec.centroids, self.args.threads)
        rows = []
        for label, t, hits, build_s, size in (
                ("maxsim PLAID nbits 2", times["maxsim PLAID nbits 2"][10], None, ours_s, ours.stats()["bytes"]),
                ("fast-plaid 1.7 nbits 2", theirs, [[ids[j] for j in h] for h in theirs["hits"]], theirs["build_s"],
                 theirs["bytes"])):
            hits = hits or t["hits"]
            rows.append({"collection": name, "index": label, "build_s": build_s, "recall10": recall_at(hits, truth),
                         "bytes_per_token": size / ours.stats()["tokens"],
                         "ndcg10": index_data.ndcg(hits, coll) if coll else None,
                         **{key: t[key] for key in ("first_ms", "warm_ms", "first_p50", "warm_p50")}})
        self.cleanup(indexes)
        return rows

    def stage_codecs(self) -> None:
        rows = []
        for coll_name in ("cranfield", "nq-kd"):
            coll = index_data.load(coll_name)
            queries = coll.queries[:30] if self.args.quick else coll.queries
            exact = build("exact", "exact", coll.docs, coll.ids)[0]
            truth = [[i for i, _ in h] for h in exact.search(queries, k=10)]
            rows.append({"collection": coll_name, "queries": len(queries), "codec": "exact", "seed": None,
                         "ndcg10": index_data.ndcg(truth, coll), "recall10": 1.0,
                         "bytes_per_token": exact.stats()["bytes_per_token"]})
            for nbits in (1, "ternary", 2, 4):
                for seed in CODEC_SEEDS:
                    index = build(f"codec-{nbits}", "plaid", coll.docs, coll.ids, nbits=nbits, seed=seed)[0]
                    hits = [[i for i, _ in h] for h in index.search(queries, k=10)]
                    rows.append({"collection": coll_name, "queries": len(queries), "codec": str(nbits), "seed": seed,
                                 "ndcg10": index_data.ndcg(hits, coll), "recall10": recall_at(hits, truth),
                                 "bytes_per_token": index.stats()["bytes_per_token"]})
                    self.cleanup({0: index})
            self.cleanup({0: exact})
        self.save("codecs", rows)

    def stage_defaults(self) -> None:
        from index_defaults import study
        self.save("defaults", study(self.args.quick, self.args.threads))

    # ---------------------------------------------------------------- rows
    def index_row(self, collection, label, index, build_s, times, truth) -> dict:
        stats = index.stats()
        t = times[10]
        return {"collection": collection, "index": label, "build_s": build_s, "tokens": stats["tokens"],
                "bytes_per_token": stats["bytes"] / stats["tokens"],
                "tiers": {k: v / stats["tokens"] for k, v in index.tier_bytes().items()},
                "recall10": recall_at(t["hits"], truth), "open_s": times["open_s"],
                **{key: v for key, v in t.items() if key.endswith("ms") or key.endswith("p50")}}

    def scoring(self, collection, index, queries, truth, coll=None) -> list[dict]:
        """Scoring from the codes vs decompress-then-score, on the same final candidates."""
        from index_scoring import compare
        rows = compare(index, queries, truth, coll)
        for row in rows:
            row["collection"] = collection
        return rows

    @staticmethod
    def cleanup(indexes: dict) -> None:
        for index in indexes.values():
            shutil.rmtree(index.folder, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (~15 min)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--append", action="store_true", help="keep the other stages' rows of the last run")
    p.add_argument("--only", choices=["20k", "real", "100k", "fastplaid", "defaults", "codecs"], action="append")
    a = p.parse_args()
    import faiss
    import torch
    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    bench = Bench(a)
    for stage in a.only or ["defaults", "20k", "real", "100k", "fastplaid", "codecs"]:
        getattr(bench, f"stage_{stage}")()
        print(f"{stage} done; wrote {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
