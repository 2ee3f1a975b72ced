"""Encoding throughput: maxsim vs sentence-transformers 6 on the same MiniLM multi-vector model.

Model: all-MiniLM-L6-v2 + seeded Dense 384->128 + punctuation skiplist + Normalize, "[Q] "/"[D] "
prompts, queries expanded to 32, documents cut at 180 tokens; saved by maxsim, loaded by both.
Data: Cranfield (1400 documents, 225 queries). Batch 32, 2 threads, CPU. Runs alternate between
the two libraries (best of N) so that load from other processes hits both alike.

    python bench/encode.py [--repeats 3] [--limit N]
"""

from __future__ import annotations

import argparse
import string
import sys
import tempfile

import numpy as np
import torch

from common import best_of, cranfield_texts, markdown_table

from maxsim import Dense, MultiVectorEncoder, MultiVectorMask, Normalize, Transformer
from maxsim.models.default import minilm_folder


def build_model(folder: str) -> None:
    torch.manual_seed(0)
    transformer = Transformer.from_pretrained(minilm_folder(), query_length=32, document_length=180,
                                              query_expansion={"strategy": "fixed", "attend": False, "length": 32})
    model = MultiVectorEncoder(modules=[transformer, Dense(384, 128), MultiVectorMask(list(string.punctuation)),
                                        Normalize()], prompts={"query": "[Q] ", "document": "[D] "}, device="cpu")
    model.save(folder)


def max_diff(a, b) -> float:
    assert [x.shape for x in a] == [tuple(y.shape) for y in b], "token counts differ"
    return max(float(np.abs(x - np.asarray(y)).max()) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents and queries")
    parser.add_argument("--bf16", action="store_true",
                        help="add a row: maxsim in bfloat16 (not identical outputs) vs maxsim in float32")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from sentence_transformers import MultiVectorEncoder as STEncoder

    docs, queries = cranfield_texts()
    docs, queries = docs[: args.limit], queries[: args.limit]
    with tempfile.TemporaryDirectory() as folder:
        build_model(folder)
        ours = MultiVectorEncoder(folder, device="cpu")
        theirs = STEncoder(folder, device="cpu")
        fast = MultiVectorEncoder(folder, device="cpu", dtype="bfloat16") if args.bf16 else None
    bs = args.batch_size
    runs = {
        "documents (reference: sentence-transformers 6.2)": (lambda: ours.encode_document(docs, batch_size=bs),
                      lambda: theirs.encode_document(docs, batch_size=bs, convert_to_numpy=True), len(docs)),
        "queries (reference: sentence-transformers 6.2)": (lambda: ours.encode_query(queries, batch_size=bs),
                    lambda: theirs.encode_query(queries, batch_size=bs, convert_to_numpy=True), len(queries)),
    }
    if fast is not None:
        runs["documents in bfloat16 (reference: maxsim float32)"] = (
            lambda: fast.encode_document(docs, batch_size=bs), lambda: ours.encode_document(docs, batch_size=bs),
            len(docs))
    rows = []
    for name, (mine, other, n) in runs.items():
        diff = max_diff(mine(), other())
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):  # interleaved
            t_ours.append(best_of(mine, 1))
            t_theirs.append(best_of(other, 1))
        rate_ours, rate_theirs = n / min(t_ours), n / min(t_theirs)
        rows.append([name, n, f"{rate_ours:.1f}/s", f"{rate_theirs:.1f}/s", f"{rate_ours / rate_theirs:.2f}x",
                     f"{diff:.1e}"])
    print(markdown_table(["texts", "count", "maxsim", "reference", "ratio", "max abs diff"], rows))
    print(f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, batch {bs}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
