"""Model-variant quality on a BEIR folder (default: Cranfield): BM25, dense MiniLM, multi-vector variants.

    python -P bench/model_variants.py [--data tests/fixtures/data/cranfield] [--fields title+text|text]
        [--systems bm25,bm25stem,dense,default,markers,expansion,doc180]

Every system is scored with ``maxsim.evaluation`` (nDCG@10 graded, recall@100), on the same documents:
BEIR's "title text" (``--fields title+text``, the evaluator's default) or the "text" field alone
(``--fields text``; Cranfield's text already starts with its title). Systems:
- bm25: ``bm25s`` defaults (Lucene BM25, k1=1.5, b=0.75), lower-cased, English stopwords removed,
  no stemming (the baseline).
- bm25stem: ``maxsim.search.bm25`` (the hybrid retriever's BM25): the same plus PyStemmer's English
  Snowball stemmer.
- dense: all-MiniLM-L6-v2 as published: mean pooling of token vectors over the attention mask,
  L2-normalised, cosine; 256 tokens (its sentence-transformers max_seq_length).
- default: ``MultiVectorEncoder.default()`` (MiniLM token vectors, queries 32 / documents 256 tokens,
  punctuation skipped on documents, normalised, no markers, no query expansion).
- markers: default + prompts "[Q] " / "[D] "; expansion: default + [MASK] query expansion to 32
  tokens (fixed, not attended); doc180: default with documents cut at 180 tokens.
Prints one markdown row per system as it finishes (wall time = the whole evaluation, encoding included).
``-P``: bench/maxsim.py would otherwise shadow the maxsim package.
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path

import bm25s
import numpy as np
import torch
import transformers

from maxsim import MultiVectorEncoder, MultiVectorMask, Normalize, Transformer
from maxsim.evaluation import InformationRetrievalEvaluator, evaluate_rankings, load_beir_folder
from maxsim.models.default import minilm_folder
from maxsim.scoring import topk
from maxsim.search.bm25 import BM25Index

SHARED = Path(__file__).resolve().parents[1] / "tests" / "fixtures"  # models/, data/ (see tests/README.md)
CUTOFFS = {"precision_recall_at_k": (1, 3, 5, 10, 100)}


def variant(document_length: int = 256, markers: bool = False, expansion: bool = False) -> MultiVectorEncoder:
    """The default pipeline with one choice changed."""
    transformer = Transformer.from_pretrained(
        minilm_folder(), query_length=32, document_length=document_length,
        query_expansion={"strategy": "fixed", "length": 32, "attend": False} if expansion else None)
    prompts = {"query": "[Q] ", "document": "[D] "} if markers else None
    modules = [transformer, MultiVectorMask(list(string.punctuation)), Normalize("token_embeddings")]
    return MultiVectorEncoder(modules=modules, prompts=prompts, device="cpu")


def bm25_rankings(ev: InformationRetrievalEvaluator, k: int) -> dict:
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(ev.documents, stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(list(ev.queries.values()), stopwords="en", show_progress=False)
    idx, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    return {qid: [(ev.doc_ids[j], float(s)) for j, s in zip(row, row_s)]
            for qid, row, row_s in zip(ev.queries, idx, scores)}


def bm25_stemmed_rankings(ev: InformationRetrievalEvaluator, k: int) -> dict:
    ranker = BM25Index.build(ev.doc_ids, ev.documents)
    return dict(zip(ev.queries, ranker.top(list(ev.queries.values()), k)))


@torch.inference_mode()
def mean_pooled(model, tokenizer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """(N, 384) float32: mean of the token vectors over the attention mask, L2-normalised."""
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start: start + batch_size], padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out)


def dense_rankings(ev: InformationRetrievalEvaluator, k: int) -> dict:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_folder()))
    model = transformers.AutoModel.from_pretrained(str(minilm_folder())).eval()
    queries = mean_pooled(model, tokenizer, list(ev.queries.values()))
    documents = mean_pooled(model, tokenizer, ev.documents)
    idx, scores = topk(queries @ documents.T, k)
    return {qid: [(ev.doc_ids[j], float(s)) for j, s in zip(row, row_s)]
            for qid, row, row_s in zip(ev.queries, idx, scores)}


SYSTEMS = {
    "bm25": ("BM25 (bm25s, English stopwords, no stemming)", bm25_rankings),
    "bm25stem": ("BM25 + Snowball stemmer (maxsim.search.bm25)", bm25_stemmed_rankings),
    "dense": ("dense all-MiniLM-L6-v2 (mean pooling)", dense_rankings),
    "default": ("MaxSim default (doc 256, no markers, no expansion)", MultiVectorEncoder.default),
    "markers": ("MaxSim default + [Q]/[D] markers", lambda: variant(markers=True)),
    "expansion": ("MaxSim default + [MASK] query expansion to 32", lambda: variant(expansion=True)),
    "doc180": ("MaxSim default, documents 180 tokens", lambda: variant(document_length=180)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "data" / "cranfield"))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--fields", choices=["title+text", "text"], default="title+text")
    args = parser.parse_args()
    unknown = [s for s in args.systems.split(",") if s not in SYSTEMS]
    if unknown:
        sys.exit(f"unknown system(s) {unknown}; choose among {list(SYSTEMS)}")
    queries, corpus, qrels = load_beir_folder(args.data)
    if args.fields == "text":
        corpus = {doc_id: doc["text"] for doc_id, doc in corpus.items()}
    ev = InformationRetrievalEvaluator(queries, corpus, qrels, name="", show_progress_bar=False, **CUTOFFS)
    print(f"{Path(args.data).name} ({args.fields}): {len(ev.documents)} documents, {len(ev.queries)} judged "
          f"queries; torch threads {torch.get_num_threads()}\n")
    print("| system | nDCG@10 | recall@100 | wall time (s) |\n|---|--:|--:|--:|", flush=True)
    for key in args.systems.split(","):
        label, build = SYSTEMS[key]
        start = time.perf_counter()
        if key in ("bm25", "bm25stem", "dense"):
            results = evaluate_rankings(build(ev, 100), ev.relevant_docs, functions=ev.functions)
        else:
            results = ev(build())
        seconds = time.perf_counter() - start
        print(f"| {label} | {results['MaxSim_ndcg@10']:.4f} | {results['MaxSim_recall@100']:.4f} | {seconds:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
