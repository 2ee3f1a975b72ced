"""The index contract shared by every index kind (ExactIndex, PlaidIndex)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Scored = tuple[str, float]  # (id, MaxSim score)
WARM_VECTORS = 16  # query vectors of the warm-up search: the scan's narrowest padded shape


class Index(ABC):
    """A folder on disk holding token vectors of documents under user-chosen string ids.

    Every change (``add``, ``remove``) is atomic: a process killed at any instant leaves the folder
    at its last committed state. Readers in other processes keep working while one writer writes.
    Internal positions never leak: the API speaks ids only.
    """

    kind: str = ""

    @classmethod
    @abstractmethod
    def create(cls, folder: str | Path, dim: int, **params) -> Index:
        """Create an empty index of ``dim``-dimensional vectors in ``folder`` (must not hold an index)."""

    @classmethod
    @abstractmethod
    def open(cls, folder: str | Path) -> Index:
        """Open the last committed state of the index in ``folder``."""

    @abstractmethod
    def add(self, ids: Sequence[str], embeddings: Sequence[np.ndarray],
            metadata: Sequence[dict | None] | None = None) -> None:
        """Add documents: ``embeddings[i]`` is (n_tokens_i, dim) float; ``metadata[i]`` JSON-serialisable.
        Duplicate or already-present ids, wrong dims, NaN/inf raise ValueError and change nothing."""

    @abstractmethod
    def remove(self, ids: Sequence[str]) -> None:
        """Remove documents by id; unknown ids raise KeyError and change nothing."""

    @abstractmethod
    def search(self, query_embeddings, k: int = 10, subset: Sequence[str] | None = None) -> list[list[Scored]]:
        """``query_embeddings``: list of (n_tokens, dim) arrays (or one (n_q, n_tokens, dim) array).
        Returns per query up to ``k`` ``(id, MaxSim score)`` pairs, best first; ``subset`` restricts
        the candidates to those ids."""

    @abstractmethod
    def ids(self) -> list[str]:
        """All document ids, in insertion order."""

    @abstractmethod
    def metadata(self, doc_id: str) -> dict | None:
        """Metadata stored with ``doc_id`` (KeyError if unknown)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents."""

    def len(self) -> int:
        """Number of documents (same as ``len(index)``)."""
        return len(self)

    def get_embeddings(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Token vectors (float32) of ``ids``: stored ones (exact) or decompressed ones (PLAID)."""
        raise NotImplementedError

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in set(self.ids())

    def warm(self) -> None:
        """Pay a search's one-off costs now rather than on the first query: one search of WARM_VECTORS
        fixed unit vectors reads every segment (the exact scan builds its int8 / bfloat16 copy, oneDNN
        sets up its kernels, scratch buffers get their pages). What a process that serves many
        queries calls after opening (``maxsim serve`` does, through one warm-up search)."""
        if len(self):
            rng = np.random.default_rng(0)
            q = rng.standard_normal((WARM_VECTORS, self.dim)).astype(np.float32)
            self.search([q / np.linalg.norm(q, axis=1, keepdims=True)], k=1)
