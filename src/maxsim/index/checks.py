"""Input validation shared by the indexes and the Retriever: every error names the bad item."""

from __future__ import annotations

import math

import numpy as np

from maxsim.errors import InvalidInputError


def as_float_array(x, what: str) -> np.ndarray:
    """numpy or torch (any float/int dtype) -> numpy array; other dtypes raise TypeError naming ``what``."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise InvalidInputError(f"{what}: expected a float array, got dtype {arr.dtype}.")
    return arr


def check_ids(ids, what: str = "ids") -> list[str]:
    """A list of distinct non-empty string ids; one string, a non-string or a repeat raises."""
    if isinstance(ids, (str, bytes)):
        raise InvalidInputError(f"{what} must be a list of strings, not one string ({ids!r}).")
    if not hasattr(ids, "__iter__"):
        raise InvalidInputError(f"{what} must be a list of strings, got {type(ids).__name__}.")
    ids = list(ids)
    seen = set()
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidInputError(f"{what}[{i}] is {doc_id!r}; ids must be non-empty strings.")
        if doc_id in seen:
            raise InvalidInputError(f"duplicate id {doc_id!r} in {what}: {doc_id!r} twice (position {i}); "
                                    "give each id once.")
        seen.add(doc_id)
    return ids


def check_k(k) -> int:
    """``k`` as a positive int."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InvalidInputError(f"k must be an integer, got {k!r}.")
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}.")
    return int(k)


def check_embeddings(ids: list[str], embeddings, dim: int, limit: float | None = None) -> list[np.ndarray]:
    """One (n_tokens, dim) finite array per id (a 3-D array counts as a list); values above
    ``limit`` (what the storage dtype can hold) raise."""
    if (isinstance(embeddings, np.ndarray) or hasattr(embeddings, "detach")) and embeddings.ndim == 3:
        embeddings = list(embeddings)
    embeddings = list(embeddings)
    if len(embeddings) != len(ids):
        raise InvalidInputError(f"got {len(ids)} ids but {len(embeddings)} embeddings.")
    out = []
    for i, (doc_id, emb) in enumerate(zip(ids, embeddings)):
        arr = as_float_array(emb, f"embeddings of id {doc_id!r}")
        where = f"embeddings of id {doc_id!r} (position {i})"
        if arr.ndim != 2:
            raise InvalidInputError(f"{where} have shape {arr.shape}; expected (n_tokens, {dim}).")
        if arr.shape[1] != dim:
            raise InvalidInputError(f"{where} have dim {arr.shape[1]}; the index has dim {dim}.")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InvalidInputError(f"{where} contain NaN or inf.")
        if limit is not None and arr.size and float(np.abs(arr).max()) > limit:
            raise InvalidInputError(f"{where} exceed {limit:g}, the largest value this index can store.")
        out.append(arr)
    return out


def check_queries(query_embeddings, dim: int) -> list[np.ndarray]:
    """Query vectors -> list of contiguous float32 (n_tokens, dim) arrays; empty, wrong-dim or
    non-finite queries raise, naming the query."""
    if isinstance(query_embeddings, np.ndarray) or hasattr(query_embeddings, "detach"):
        if query_embeddings.ndim == 2:
            raise InvalidInputError("search takes a list of queries: wrap one (n_tokens, dim) query in a list.")
        if query_embeddings.ndim != 3:
            raise InvalidInputError(f"query_embeddings has shape {tuple(query_embeddings.shape)}; expected a list "
                             "of (n_tokens, dim) arrays or one (n_queries, n_tokens, dim) array.")
    out = []
    for i, q in enumerate(list(query_embeddings)):
        arr = as_float_array(q, f"query {i}")
        if arr.ndim != 2:
            raise InvalidInputError(f"query {i} has shape {arr.shape}; expected (n_tokens, {dim}).")
        if arr.shape[0] == 0:
            raise InvalidInputError(f"query {i} is empty (0 token vectors).")
        if arr.shape[1] != dim:
            raise InvalidInputError(f"query {i} has dim {arr.shape[1]}; the index has dim {dim}.")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"query {i} contains NaN or inf.")
        out.append(arr)
    return out


def check_search_settings(params: dict) -> None:
    """PLAID search settings: n_ivf_probe and n_full_scores positive ints, the threshold a number (None: default)."""
    for key in ("n_ivf_probe", "n_full_scores"):
        v = params.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise InvalidInputError(f"{key} must be a positive integer or None, got {v!r}.")
    v = params.get("centroid_score_threshold")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)):
        raise InvalidInputError(f"centroid_score_threshold must be a number or None, got {v!r}.")
