"""Documents and passages: a document is what users add, get, filter and see; a passage is what is
encoded and indexed. ``Encoder`` splits and encodes documents into passages; ``rank_documents``
turns a passage ranking into a document ranking (a document scores its best passage), exactly:
it deepens the passage search until ``k`` distinct documents are found.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from maxsim.errors import InvalidInputError
from maxsim.index.packed_numpy import maxsim_numpy
from maxsim.io.chunking import LOOKBACK, OVERLAP, count_tokens, split_documents
from maxsim.search.explain import explain_alignment
from maxsim.search.hits import Passage

PassageRef = tuple[int, int, int]  # ordinal, start, end (characters)
DEPTH_MARGIN = 1.25  # passages searched per expected document passage: one scan suffices almost always


@dataclass
class Encoded:
    """Per document: ``spans`` (its passages' character spans) and ``tokens`` (vectors kept);
    ``vectors``: one (n_tokens, dim) float32 array per passage, documents in order."""

    spans: list[list[tuple[int, int]]]
    vectors: list[np.ndarray]
    tokens: list[int]

    def select(self, documents: list[int]) -> Encoded:
        """The documents at positions ``documents``, in that order."""
        starts = np.cumsum([0] + [len(spans) for spans in self.spans])
        vectors = [v for d in documents for v in self.vectors[starts[d]: starts[d + 1]]]
        return Encoded([self.spans[d] for d in documents], vectors, [self.tokens[d] for d in documents])


class Encoder:
    """Split (per ``manifest["passages"]``), encode and pool (``manifest["pool_factor"]``) documents."""

    def __init__(self, model_of, manifest: dict):
        """``model_of()``: the encoder, called only when texts are encoded or split."""
        self.model_of, self.settings, self.pool_factor = model_of, manifest["passages"], manifest["pool_factor"]

    @staticmethod
    def passage_settings(model, passages) -> dict:
        """``{"split", "max_tokens", "overlap", "lookback"}`` from ``passages`` (True, False or a dict
        of those keys; see ``maxsim.io.chunking``)."""
        budget = model.transformer.max_length("document") - len(model.tokenize([""], "document")[0])
        settings = {"split": True, "max_tokens": max(1, budget), "overlap": OVERLAP, "lookback": LOOKBACK}
        if isinstance(passages, bool):
            return {**settings, "split": passages}
        if not isinstance(passages, dict) or set(passages) - set(settings):
            raise InvalidInputError(f"passages must be True, False or a dict with keys {sorted(settings)}, "
                                    f"got {passages!r}.")
        settings.update(passages)
        for key in ("max_tokens", "overlap", "lookback"):
            if isinstance(settings[key], bool) or not isinstance(settings[key], int) or settings[key] < 0:
                raise InvalidInputError(f"passages[{key!r}] must be a non-negative int, got {settings[key]!r}.")
        if not 0 < settings["max_tokens"] <= budget or settings["overlap"] >= settings["max_tokens"]:
            raise InvalidInputError(f"passages: need 0 < max_tokens <= {budget} (the model's document length) "
                                    f"and overlap < max_tokens, got {settings}.")
        return settings

    @staticmethod
    def check_pool(pool_factor) -> int:
        if isinstance(pool_factor, bool) or not isinstance(pool_factor, int) or pool_factor < 1:
            raise InvalidInputError(f"pool_factor must be an int >= 1, got {pool_factor!r}.")
        return pool_factor

    def encode(self, texts: list[str], batch_size: int, show_progress_bar, embeddings=None) -> Encoded:
        """``embeddings``: None (encode ``texts``), one array per text, or an ``Encoded`` (passages
        already split and encoded elsewhere, e.g. by a Ray worker pool), used as it is."""
        if isinstance(embeddings, Encoded):
            if len(embeddings.spans) != len(texts) or len(embeddings.tokens) != len(texts):
                raise InvalidInputError(f"the Encoded holds {len(embeddings.spans)} documents for {len(texts)} texts.")
            return embeddings
        if embeddings is not None:
            vectors = list(embeddings)
            if len(vectors) != len(texts):
                raise InvalidInputError(f"got {len(vectors)} embeddings for {len(texts)} texts: pass one per text.")
            spans = [[(0, len(text))] for text in texts]
        else:
            spans = self.split(texts)
            pieces = [text[s:e] for text, doc in zip(texts, spans) for s, e in doc]
            vectors = self.model_of().encode_document(pieces, batch_size=batch_size,
                                                      show_progress_bar=show_progress_bar)
        if self.pool_factor > 1:
            from maxsim.models.pooling import pool_embeddings

            vectors = pool_embeddings(vectors, self.pool_factor)
        vectors = [np.asarray(v, dtype=np.float32) for v in vectors]
        tokens, start = [], 0
        for doc in spans:
            tokens.append(sum(len(v) for v in vectors[start: start + len(doc)]))
            start += len(doc)
        return Encoded(spans, vectors, tokens)

    def split(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        s, tokenizer = self.settings, self.model_of().tokenizer
        if s["split"]:
            return split_documents(texts, tokenizer, s["max_tokens"], s["overlap"],
                                   s.get("lookback", LOOKBACK))
        cut = sum(n > s["max_tokens"] for n in count_tokens(texts, tokenizer))
        if cut:
            warnings.warn(f"{cut} of {len(texts)} documents are longer than the model's {s['max_tokens']} tokens and "
                          "were cut there (passages are off): their ends are not searchable.", stacklevel=4)
        return [[(0, len(text))] for text in texts]


def rank_documents(index, snap, queries: list, k: int,
                   keys: list[int] | None) -> list[list[tuple[str, float, PassageRef]]]:
    """Per query the top ``k`` documents ``(id, best passage score, best passage)``: passages are
    searched deep enough for ``k`` documents at the collection's passages per document (x1.25), and
    deeper (x4) until ``k`` distinct documents or all passages are seen (each deepening is a new scan)."""
    subset = None if keys is None else [str(key) for key in keys]
    n = len(index) if subset is None else len(subset)
    out: list = [None] * len(queries)
    per_document = snap.digest.count("passages") / max(1, snap.digest.count("documents"))
    todo, depth = list(range(len(queries))), max(k, math.ceil(k * per_document * DEPTH_MARGIN))
    while todo:
        hits = index.search([queries[i] for i in todo], k=min(depth, n), subset=subset)
        info = snap.passages(int(pid) for h in hits for pid, _ in h)
        later = []
        for qi, h in zip(todo, hits):
            docs: dict[str, tuple[float, PassageRef]] = {}
            for pid, score in h:
                doc, *passage = info[int(pid)]
                docs.setdefault(doc, (score, tuple(passage)))
            if len(docs) >= k or len(h) < depth or depth >= n:
                out[qi] = [(doc, score, passage) for doc, (score, passage) in list(docs.items())[:k]]
            else:
                later.append(qi)
        todo, depth = later, depth * 4
    return out


def best_passages(index, snap, queries: list, ranked: list, dense: list) -> list[dict[str, PassageRef]]:
    """Per query, doc id -> its best passage, for every document in ``ranked``: from the dense
    ranking where it is there, else scored now (a hybrid hit found by BM25 alone)."""
    out = []
    for q, hits, found in zip(queries, ranked, dense):
        best = {doc: passage for doc, _, passage in found}
        for doc, _ in hits:
            if doc not in best:
                best[doc] = tuple(_best_passage(index, snap, q, doc)[1:])
        out.append(best)
    return out


def _best_passage(index, snap, query: np.ndarray, doc_id: str) -> tuple[int, int, int, int]:
    """(passage key, ordinal, start, end) of the passage of ``doc_id`` scoring best for ``query``."""
    rows = snap.doc_passages(doc_id)
    if len(rows) > 1:
        vectors = index.get_embeddings([str(r[0]) for r in rows])
        scores = maxsim_numpy([query], np.concatenate(vectors), np.array([len(v) for v in vectors]))[0]
        rows = [rows[int(np.argmax(scores))]]
    return tuple(rows[0])


def explain_passage(model, index, snap, query: str, doc_id: str, text: str, stored: bool) -> dict:
    """``explain_alignment`` of ``query`` with the best passage of ``doc_id`` (character spans in
    ``text``), plus ``passage``: the ``Passage``. ``stored``: the index holds each passage's vectors
    as encoded (exact, not pooled): the alignment reads them instead of encoding the passage again."""
    q_vectors = model.encode_query([query])[0]
    key, ordinal, start, end = _best_passage(index, snap, q_vectors, doc_id)
    d_vectors = index.get_embeddings([str(key)])[0] if stored else None
    explanation = explain_alignment(model, query, text[start:end], q_vectors, d_vectors)
    explanation["document_spans"] = [None if span is None else (span[0] + start, span[1] + start)
                                     for span in explanation["document_spans"]]
    return {**explanation, "passage": Passage(ordinal, start, end, text[start:end])}
