"""Hierarchical token pooling: merge similar token vectors of a document to store fewer of them.

The definition shared by PyLate and sentence-transformers 6 (``HierarchicalTokenPooling``): the
first ``protected_tokens`` vectors (the [CLS]) are kept as they are; the others are clustered by
Ward linkage on the cosine distance ``clamp(1 - x_i . x_j, 0, 2)`` (float32) into
``max(n // pool_factor, 1)`` clusters (``fcluster(..., criterion="maxclust")``); each cluster is
replaced by its mean, in ascending cluster label order, after the protected vectors. With
``normalize`` every output vector is then L2-normalised (sentence-transformers' default).
"""

from __future__ import annotations

import numpy as np
import torch

from maxsim.errors import InvalidInputError


def pool_embeddings(embeddings: list[np.ndarray], pool_factor: float, protected_tokens: int = 1,
                    normalize: bool = True) -> list[np.ndarray]:
    """Pool every document's (n_tokens, dim) float32 vectors to about ``n_tokens / pool_factor``.

    ``pool_factor=1`` returns the input list unchanged (no copy, no normalisation)."""
    check_pool_factor(pool_factor)
    if pool_factor == 1:
        return embeddings
    out = []
    for i, x in enumerate(embeddings):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise InvalidInputError(f"embeddings[{i}] has shape {x.shape}; expected (n_tokens, dim).")
        out.append(pool_tokens(torch.from_numpy(x), pool_factor, protected_tokens, normalize).numpy())
    return out


def check_pool_factor(pool_factor) -> None:
    if isinstance(pool_factor, bool) or not isinstance(pool_factor, (int, float)) or not pool_factor >= 1:
        raise InvalidInputError(f"pool_factor must be a number >= 1 (1 = no pooling, 2 = keep about half), "
                         f"got {pool_factor!r}.")


def pool_tokens(x: torch.Tensor, pool_factor: float, protected_tokens: int = 1, normalize: bool = True
                ) -> torch.Tensor:
    """One document (n, dim) -> (protected + clusters, dim), same dtype and device."""
    return pool_with_assignment(x, pool_factor, protected_tokens, normalize)[0]


def pool_with_assignment(x: torch.Tensor, pool_factor: float, protected_tokens: int = 1, normalize: bool = True
                         ) -> tuple[torch.Tensor, np.ndarray]:
    """``pool_tokens`` and, per input vector, the row of the output that holds it: (n,) int64 (protected
    vectors map to themselves, the others to ``protected + cluster``)."""
    rest = x[protected_tokens:]
    clusters = max(int(len(rest) // pool_factor), 1)
    assignment = np.arange(len(x), dtype=np.int64)
    if clusters < len(rest):
        labels = ward_labels(rest.detach().float().cpu(), clusters)
        assignment[protected_tokens:] = protected_tokens + labels
        labels = torch.from_numpy(labels).to(x.device)
        means = torch.zeros(int(labels.max()) + 1, x.shape[1], dtype=x.dtype, device=x.device)
        means.index_add_(0, labels, rest)
        counts = torch.bincount(labels, minlength=len(means)).to(x.dtype)
        x = torch.cat([x[:protected_tokens], means / counts[:, None]])
    if normalize:
        x = torch.nn.functional.normalize(x.float(), dim=-1).to(x.dtype)
    return x, assignment


def ward_labels(x: torch.Tensor, clusters: int) -> np.ndarray:
    """(n, dim) float32 -> (n,) int64 cluster index in 0..k-1 (dense, in ascending label order)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    distance = (1 - torch.mm(x, x.t())).clamp_(0, 2).numpy()
    condensed = distance[np.triu_indices(len(x), k=1)]
    labels = fcluster(linkage(condensed, method="ward"), t=clusters, criterion="maxclust")
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)
