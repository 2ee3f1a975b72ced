"""Builds and searches a fast-plaid index; run by bench/index.py in fast-plaid's own virtualenv.

    python bench/fastplaid_runner.py '<json job>'   # prints RESULT <json>
"""
import json
import os
import sys
import time

import numpy as np
import torch

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
import fast_plaid.search.fast_plaid as fp_module  # noqa: E402 (after set_num_threads)
from fast_plaid import search  # noqa: E402

if args.get("n_centroids"):  # like for like: maxsim's centroid count (fast-plaid's create has no knob for it)
    _kmeans = fp_module.compute_kmeans
    fp_module.compute_kmeans = lambda **kw: _kmeans(num_partitions=args["n_centroids"], **kw)
d, lens = np.load(args["docs"]), np.load(args["lens"])
q, qlens = np.load(args["queries"]), np.load(args["qlens"])
docs = [torch.from_numpy(x.astype(np.float32)) for x in np.split(d, np.cumsum(lens)[:-1])]
queries = [torch.from_numpy(x.astype(np.float32)) for x in np.split(q, np.cumsum(qlens)[:-1])]
start = time.perf_counter()
fp = search.FastPlaid(index=args["folder"], device="cpu")
fp.create(documents_embeddings=docs, nbits=args["nbits"], **args["create"])
build = time.perf_counter() - start
size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args["folder"]) for f in fs)
out = {"build_s": build, "bytes": size, "tokens": int(lens.sum()), "settings": []}
fp.search(queries_embeddings=queries[0][None], top_k=10, show_progress=False)  # warm-up
for setting in args["settings"]:
    times, hits = [], []
    for qv in queries:
        t = time.perf_counter()
        res = fp.search(queries_embeddings=qv[None], top_k=10, show_progress=False, **setting)
        times.append(time.perf_counter() - t)
        hits.append([int(i) for i, _ in res[0]])
    out["settings"].append({"setting": setting, "times": times, "hits": hits})
print("RESULT " + json.dumps(out))
