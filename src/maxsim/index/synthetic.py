"""A clustered synthetic collection of unit token vectors, for tests and benchmarks.

Generator (deterministic for a seed):
- ``n_terms`` term centres: standard normal vectors in ``dim`` dimensions, normalised;
- ``n_topics`` topics (default ``max(8, n_docs // 100)``), each owning 64 random terms;
- a document has a random topic and a length uniform in ``doc_tokens`` (default 60..140, mean
  100); each token is a term of its topic with probability 0.7, else any term, plus Gaussian noise
  of norm ~``noise`` (default 0.35), normalised;
- a query picks a random document and ``query_tokens`` (32) of that document's terms, with noise
  ``query_noise`` (0.5), normalised.
"""

from __future__ import annotations

import numpy as np


class ClusteredCollection:
    def __init__(self, n_docs: int, dim: int = 128, n_terms: int = 4096, n_topics: int | None = None,
                 doc_tokens: tuple[int, int] = (60, 140), noise: float = 0.35, query_tokens: int = 32,
                 query_noise: float = 0.5, seed: int = 0):
        self.n_docs, self.dim, self.noise, self.query_noise = n_docs, dim, noise, query_noise
        self.query_tokens, self.seed = query_tokens, seed
        rng = np.random.default_rng(seed)
        terms = rng.standard_normal((n_terms, dim)).astype(np.float32)
        self.terms = terms / np.linalg.norm(terms, axis=1, keepdims=True)
        n_topics = n_topics or max(8, n_docs // 100)
        self.topic_terms = np.stack([rng.choice(n_terms, min(64, n_terms), replace=False) for _ in range(n_topics)])
        self.doc_topic = rng.integers(0, n_topics, n_docs)
        self.doc_len = rng.integers(doc_tokens[0], doc_tokens[1] + 1, n_docs)

    def _doc_terms(self, i: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 1, i))
        n = int(self.doc_len[i])
        own = rng.random(n) < 0.7
        topic = self.topic_terms[self.doc_topic[i]]
        return np.where(own, topic[rng.integers(0, len(topic), n)], rng.integers(0, len(self.terms), n)), rng

    def document(self, i: int) -> np.ndarray:
        terms, rng = self._doc_terms(i)
        v = self.terms[terms] + rng.standard_normal((len(terms), self.dim)).astype(np.float32) \
            * np.float32(self.noise / np.sqrt(self.dim))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def documents(self, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
        return [self.document(i) for i in range(start, self.n_docs if stop is None else stop)]

    def queries(self, n: int, seed: int = 1, max_doc: int | None = None) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, 2, seed))
        out = []
        for _ in range(n):
            terms, _ = self._doc_terms(int(rng.integers(0, max_doc or self.n_docs)))
            pick = terms[rng.integers(0, len(terms), self.query_tokens)]
            v = self.terms[pick] + rng.standard_normal((len(pick), self.dim)).astype(np.float32) \
                * np.float32(self.query_noise / np.sqrt(self.dim))
            out.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
        return out
