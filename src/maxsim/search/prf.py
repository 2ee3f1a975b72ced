"""ColBERT-PRF: pseudo-relevance feedback on token vectors (Wang, Macdonald, Tonellotto, Ounis, ICTIR
2021; ACM TWeb 2023).

A first search gives the top ``fb_docs`` documents. The token vectors of their best passages are
clustered by k-means (faiss) into ``clusters`` centroids. Each centroid gets a discrimination weight:
its ``NEIGHBOURS`` nearest feedback token vectors (inner product) vote with the BM25 term of the word
each token lies in (the word of the token's first character, as ``maxsim.search.bm25`` tokenizes it:
lower-cased, Snowball-stemmed; stopwords, one-letter words, punctuation and special tokens have no
term), the most frequent term wins (ties: the nearest token's), and the weight is that term's BM25 idf
over the collection, ``log(1 + (N - df + 0.5) / (df + 0.5))`` (N documents, df those holding it; no
term: df = N, a weight near 0). The ``expansion`` centroids of highest weight are appended to the
query, each scaled by ``beta`` x its weight, and the search runs again: for w >= 0,
``w * max_j q.d_j == max_j (w q).d_j``, so exact and PLAID indexes score the scaled vectors as they
are (score = MaxSim of the query + beta * sum_i weight_i * max_j centroid_i . d_j).

Cost per query: one extra search, the encoding of ``fb_docs`` passages (their token-to-word map) and a
k-means of a few hundred vectors.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from maxsim.errors import InvalidInputError
from maxsim.search.bm25 import tokenize
from maxsim.search.explain import token_vectors

NEIGHBOURS = 10  # feedback tokens that vote for a centroid's term (the paper's 10 nearest embeddings)
WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s' token pattern: the words BM25 indexes
SEED = 1234  # k-means initialisation: the same feedback gives the same expansion


@dataclass(frozen=True)
class PRF:
    """ColBERT-PRF parameters; the defaults are the paper's best on MS MARCO passage ranking."""

    fb_docs: int = 3       # feedback documents (their best passages), from the first search
    clusters: int = 24     # k-means centroids of their token vectors
    expansion: int = 10    # centroids kept (highest idf), appended to the query
    beta: float = 1.0      # weight of the expansion embeddings (times their idf)

    def __post_init__(self):
        for name in ("fb_docs", "clusters", "expansion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"prf.{name} must be an int >= 1, got {value!r}.")
        if self.expansion > self.clusters:
            raise InvalidInputError(f"prf.expansion ({self.expansion}) cannot exceed prf.clusters ({self.clusters}).")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 <= self.beta < math.inf:
            raise InvalidInputError(f"prf.beta must be a finite number >= 0, got {self.beta!r}.")

    @classmethod
    def of(cls, value) -> PRF | None:
        """``None``/``False`` -> None, ``True`` -> the defaults, a dict of fields or a ``PRF`` -> a ``PRF``."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict) and set(value) <= set(cls.__dataclass_fields__):
            return cls(**value)
        raise InvalidInputError(f"prf must be true, false or an object with keys {sorted(cls.__dataclass_fields__)}, "
                                f"got {value!r}.")


@dataclass
class Expansion:
    """The expansion embeddings of one query, highest weight first: ``centroids`` (E, dim) float32,
    ``weights`` (E,) their idf, ``terms`` their BM25 term (None: none), ``tokens`` the model token
    nearest to each centroid; ``vectors`` = beta x weight x centroid, what is appended to the query."""

    centroids: np.ndarray
    weights: np.ndarray
    terms: list[str | None]
    tokens: list[str]
    beta: float

    @property
    def vectors(self) -> np.ndarray:
        return (self.beta * self.weights[:, None] * self.centroids).astype(np.float32)

    def query(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` (n, dim) of the query with the expansion embeddings below them (n + E, dim)."""
        return np.concatenate([np.asarray(vectors, dtype=np.float32), self.vectors])


def expand(model, bm25, passages: list[str], prf: PRF) -> Expansion:
    """The expansion of one query from its feedback ``passages`` (texts), with the collection's
    ``bm25`` (a ``BM25Index``) for the weights."""
    vectors, terms, tokens = [], [], []
    for text in passages:
        encoded = token_vectors(model, text, "document")
        scored = np.flatnonzero(encoded["scored"])
        vectors.append(encoded["vectors"][scored])
        terms += word_terms(text, [encoded["spans"][p] for p in scored])
        tokens += [encoded["tokens"][p] for p in scored]
    if not tokens:
        return Expansion(np.zeros((0, model.dim), np.float32), np.zeros(0), [], [], prf.beta)
    points = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)
    centroids = kmeans(points, min(prf.clusters, len(points)))
    nearest = np.argsort(-(centroids @ points.T), axis=1, kind="stable")[:, :NEIGHBOURS]
    voted = [vote([terms[j] for j in row]) for row in nearest]
    weights = bm25.idf(voted)
    keep = np.argsort(-weights, kind="stable")[: prf.expansion]
    return Expansion(centroids[keep], weights[keep], [voted[i] for i in keep],
                     [tokens[nearest[i, 0]] for i in keep], prf.beta)


def explain_expansion(model, expansion: Expansion, passage) -> list[dict]:
    """What each expansion embedding matched in ``passage`` (a ``Passage``: its ``start``, ``text``): per embedding
    ``{"term", "token", "weight", "document_index", "document_token", "document_span", "score"}``, where
    ``score`` = beta x weight x the best dot product (its share of the search score) and the span is in
    the whole text."""
    encoded = token_vectors(model, passage.text, "document")
    scored = np.flatnonzero(encoded["scored"])
    sims = expansion.vectors @ encoded["vectors"][scored].T if len(scored) else np.zeros((len(expansion.terms), 0))
    out = []
    for i, (term, token, weight) in enumerate(zip(expansion.terms, expansion.tokens, expansion.weights)):
        best = int(scored[np.argmax(sims[i])]) if len(scored) else None
        span = None if best is None else encoded["spans"][best]
        out.append({"term": term, "token": token, "weight": float(weight), "document_index": best,
                    "document_token": None if best is None else encoded["tokens"][best],
                    "document_span": None if span is None else (span[0] + passage.start, span[1] + passage.start),
                    "score": float(sims[i].max()) if len(scored) else 0.0})
    return out


def kmeans(points: np.ndarray, k: int) -> np.ndarray:
    """``k`` k-means centroids (k, dim) float32 of ``points`` (n, dim) (faiss, 20 iterations, fixed seed).
    One OpenMP thread: a few hundred points gain nothing from more, and faiss's spinning thread pool
    would slow torch's next forward pass tenfold."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        clustering = faiss.Kmeans(points.shape[1], k, niter=20, seed=SEED, min_points_per_centroid=1, verbose=False)
        clustering.train(points)
    finally:
        faiss.omp_set_num_threads(threads)
    return np.asarray(clustering.centroids, dtype=np.float32)


def word_terms(text: str, spans: list) -> list[str | None]:
    """The BM25 term of the word each token span (start, end) of ``text`` lies in; None without one."""
    words = [(m.start(), m.end()) for m in WORD.finditer(text)]
    starts = np.array([s for s, _ in words], dtype=np.int64)
    found = []
    for span in spans:
        i = int(np.searchsorted(starts, span[0], side="right")) - 1 if span is not None and words else -1
        found.append(words[i] if i >= 0 and span[0] < words[i][1] else None)
    unique = sorted({w for w in found if w is not None})
    stemmed = dict(zip(unique, tokenize([text[s:e] for s, e in unique]))) if unique else {}
    return [stemmed[w][0] if w is not None and stemmed[w] else None for w in found]


def vote(terms: list[str | None]) -> str | None:
    """The most frequent term of a centroid's neighbours (nearest first; ties: the nearer one)."""
    counts = Counter(terms)
    return max(dict.fromkeys(terms), key=lambda t: counts[t])
