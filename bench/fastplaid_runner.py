"""Builds and searches a fast-plaid index; run by bench/index.py in fast-plaid's own virtualenv.

    python bench/fastplaid_runner.py '<json job>'   # prints RESULT <json>

The job gives the documents, the queries, nbits, and maxsim's centroids: fast-plaid's k-means is
replaced by them (like for like: the same centroids on both sides); ``start_from_scratch=0`` so
that it keeps no full-precision copy. Searches time a first pass over the queries (one per call,
the first searches of this process) and a warm pass (the same queries again), per setting.
"""
import json
import os
import sys
import time

import numpy as np
import torch

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
import fast_plaid.search.fast_plaid as fp_module  # noqa: E402
from fast_plaid import search  # noqa: E402

centroids = torch.from_numpy(np.load(args["centroids"])).half()
fp_module.compute_kmeans = lambda **kw: centroids
d, lens = np.load(args["docs"]), np.load(args["lens"])
q, qlens = np.load(args["queries"]), np.load(args["qlens"])
docs = [torch.from_numpy(x.astype(np.float32)) for x in np.split(d, np.cumsum(lens)[:-1])]
queries = [torch.from_numpy(x.astype(np.float32)) for x in np.split(q, np.cumsum(qlens)[:-1])]
start = time.perf_counter()
fp = search.FastPlaid(index=args["folder"], device="cpu")
fp.create(documents_embeddings=docs, nbits=args["nbits"], start_from_scratch=0)
build = time.perf_counter() - start
size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args["folder"]) for f in fs)
out = {"build_s": build, "bytes": size, "tokens": int(lens.sum()), "settings": []}
fp = search.FastPlaid(index=args["folder"], device="cpu")  # freshly opened
for setting in args["settings"]:
    passes = []
    for _ in range(2):  # first pass, warm pass
        times, hits = [], []
        for qv in queries:
            t = time.perf_counter()
            res = fp.search(queries_embeddings=qv[None], top_k=10, show_progress=False, **setting)
            times.append(time.perf_counter() - t)
            hits.append([int(i) for i, _ in res[0]])
        passes.append((times, hits))
    out["settings"].append({"setting": setting, "first": passes[0][0], "warm": passes[1][0], "hits": passes[1][1]})
print("RESULT " + json.dumps(out))
