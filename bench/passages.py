"""Choose the passage splitter's defaults (overlap, boundary lookback) by measurement.

Long Markdown reports built from Cranfield (tests/long_documents.py: one query's answer abstract
placed past the first 2,000 characters of each report) are split with
``maxsim.io.chunking.split_passages`` under a grid of (overlap, lookback); every passage is encoded
with the embedded default model and a report scores the max over its passages (exact MaxSim). Printed per
setting: recall@1 / @3 and MRR of the answer's report, passages and encoded tokens (the index cost),
the share of answers held whole by one passage (structure: all reports; search: the first ones).
Then full Cranfield (short abstracts): nDCG@10 of the model's own truncation against passages with
the defaults (or the ``--cranfield-settings`` given).

    python bench/passages.py [--documents 100] [--searched 20] [--skip-long] [--skip-cranfield]
                             [--cranfield-settings 32:48,0:48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

from common import load_average, machine_line, markdown_table  # noqa: E402
from long_documents import CRANFIELD, long_collection  # noqa: E402
from maxsim import MultiVectorEncoder  # noqa: E402
from maxsim.io.chunking import LOOKBACK, OVERLAP, count_tokens, split_documents  # noqa: E402
from maxsim.scoring import maxsim  # noqa: E402

GRID = [(overlap, lookback) for overlap in (0, 16, 32, 64) for lookback in (0, 16, 24, 48, 96)]  # structure only
# also encoded and searched
SEARCHED = [(0, 0), (0, 48), (32, 0), (32, 16), (32, 48), (64, 0), (64, 16), (64, 24), (64, 48)]


class Encoded:
    """Document vectors by text, so settings that give the same passage encode it once."""

    def __init__(self, model):
        self.model, self.cache = model, {}

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        new = sorted({t for t in texts if t not in self.cache})
        for text, vectors in zip(new, self.model.encode_document(new, batch_size=32) if new else []):
            self.cache[text] = vectors
        return [self.cache[t] for t in texts]


def budget(model) -> int:
    """Tokens of document text a passage may hold: the document length minus special tokens."""
    return model.transformer.max_length("document") - model.tokenizer.num_special_tokens_to_add(pair=False)


def passage_scores(encode, model, queries: list[str], texts: list[str], spans: list[list]) -> np.ndarray:
    """(n_queries, n_texts) float32: per text the best MaxSim over its passages."""
    pieces = [text[s:e] for text, doc in zip(texts, spans) for s, e in doc]
    owner = np.repeat(np.arange(len(texts)), [len(doc) for doc in spans])
    scores = maxsim(model.encode_query(queries), encode(pieces))
    best = np.full((len(queries), len(texts)), -np.inf, dtype=np.float32)
    np.maximum.at(best.T, owner, scores.T)
    return best


def long_documents(model, encode, n_documents: int, n_searched: int) -> list[list]:
    """Per setting: structure over ``n_documents`` reports; retrieval over the first ``n_searched``."""
    collection = long_collection(n_documents)
    doc_ids, texts = list(collection.documents), list(collection.documents.values())
    qids = list(collection.queries)
    answers = np.array([doc_ids.index(collection.answers[q]) for q in qids])
    settings = [("truncate (model)", (None, None), [[(0, len(t))] for t in texts])]
    settings += [(f"overlap {o}, lookback {b}", (o, b), split_documents(texts, model.tokenizer, budget(model), o, b))
                 for o, b in GRID]
    rows = []
    for name, setting, spans in settings:
        whole = np.mean([any(s <= collection.answer_spans[q][0] and collection.answer_spans[q][1] <= e
                             for s, e in spans[a]) for q, a in zip(qids, answers)])
        pieces = [t[s:e] for t, doc in zip(texts, spans) for s, e in doc]
        tokens = sum(min(n, budget(model)) for n in count_tokens(pieces, model.tokenizer))  # as encoded
        row = [name, sum(map(len, spans)), tokens, f"{whole:.2f}"]
        if setting in SEARCHED or setting == (None, None):
            scores = passage_scores(encode, model, [collection.queries[q] for q in qids[:n_searched]],
                                    texts[:n_searched], spans[:n_searched])
            ranks = (scores > scores[np.arange(n_searched), answers[:n_searched]][:, None]).sum(1) + 1
            row += [f"{np.mean(ranks <= 1):.3f}", f"{np.mean(ranks <= 3):.3f}", f"{np.mean(1 / ranks):.3f}"]
        rows.append(row + [""] * (7 - len(row)))
    return rows


def cranfield_ndcg(model, encode, settings: list[tuple[int, int]]) -> list[list]:
    from maxsim.evaluation import evaluate_rankings, load_beir_folder
    from maxsim.evaluation.loaders import document_text

    queries, corpus, qrels = load_beir_folder(CRANFIELD)
    doc_ids, qids = list(corpus), list(queries)
    texts = [document_text(corpus[d]) for d in doc_ids]
    rows = []
    for name, spans in [("truncate (model)", [[(0, len(t))] for t in texts])] + \
            [(f"passages (overlap {o}, lookback {b})", split_documents(texts, model.tokenizer, budget(model), o, b))
             for o, b in settings]:
        scores = passage_scores(encode, model, [queries[q] for q in qids], texts, spans)
        top = np.argsort(-scores, axis=1)[:, :100]
        rankings = {q: [(doc_ids[j], float(scores[i, j])) for j in top[i]] for i, q in enumerate(qids)}
        ndcg = evaluate_rankings(rankings, qrels)["MaxSim_ndcg@10"]
        rows.append([name, sum(len(s) > 1 for s in spans), sum(map(len, spans)), f"{ndcg:.4f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100, help="reports split (structure columns)")
    parser.add_argument("--searched", type=int, default=20, help="of which encoded and searched")
    parser.add_argument("--skip-cranfield", action="store_true")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--cranfield-settings", default=f"{OVERLAP}:{LOOKBACK}",
                        help="overlap:lookback pairs for the Cranfield check, comma-separated")
    args = parser.parse_args()
    load = load_average()
    model = MultiVectorEncoder.default(device="cpu")
    encode = Encoded(model)
    if not args.skip_long:
        print(f"## Long reports ({args.documents} reports split, the first {args.searched} searched with their "
              f"{args.searched} queries; passage budget {budget(model)} tokens)\n", flush=True)
        print(markdown_table(["setting", "passages", "tokens", "answer whole", "recall@1", "recall@3", "MRR"],
                             long_documents(model, encode, args.documents, args.searched)), flush=True)
    if not args.skip_cranfield:
        print("\n## Cranfield (1400 abstracts, 225 queries)\n")
        settings = [tuple(map(int, pair.split(":"))) for pair in args.cranfield_settings.split(",")]
        print(markdown_table(["setting", "documents split", "passages", "nDCG@10"],
                             cranfield_ndcg(model, encode, settings)))
    print(f"\n{machine_line(load)}")


if __name__ == "__main__":
    main()
