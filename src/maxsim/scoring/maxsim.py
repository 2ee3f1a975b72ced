"""MaxSim late-interaction scoring: matrix, pairwise and top-k, chunked to bounded memory.

MaxSim(q, d) = sum over query vectors i of max over document vectors j of <q_i, d_j>.
A document with no vectors scores 0. Inputs are lists of (n_tokens_i, dim) float arrays
(numpy or torch) or one (n, tokens, dim) array; scores are float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from maxsim.errors import InvalidInputError

# Elements of the (document tokens x query tokens) block computed at once: 2**20 floats = 4 MiB, small
# enough to stay in the cores' L2 caches between the product and its max (bench/maxsim.py: 1.4x the rate
# of 32 MiB blocks).
DEFAULT_BLOCK_ELEMENTS = 2**20
# Document vectors padded at once (one gather per group; the blocks are views of it): 32k = 16 MiB float32.
GROUP_TOKENS = 2**15


def as_tensor_list(embeddings, name: str = "embeddings") -> list[torch.Tensor]:
    """Normalise inputs to a list of 2-D float32 CPU-or-device tensors, checking shapes."""
    if isinstance(embeddings, (np.ndarray, torch.Tensor)) and embeddings.ndim == 3:
        embeddings = list(embeddings)
    if not isinstance(embeddings, Sequence) and not isinstance(embeddings, (list, tuple)):
        raise InvalidInputError(f"{name} must be a list of (tokens, dim) arrays, got {type(embeddings).__name__}.")
    out, dim = [], None
    for i, item in enumerate(embeddings):
        t = torch.from_numpy(np.asarray(item)) if not isinstance(item, torch.Tensor) else item
        if t.ndim != 2:
            raise InvalidInputError(f"{name}[{i}] has shape {tuple(t.shape)}; expected (tokens, dim).")
        if dim is not None and t.shape[1] != dim:
            raise InvalidInputError(f"{name}[{i}] has dim {t.shape[1]}, the others have {dim}.")
        dim = t.shape[1]
        out.append(t.float())
    return out


def pad_queries(queries: list[torch.Tensor], dim: int, device) -> torch.Tensor:
    """(Nq, Lq_max, dim) with zero rows as padding: a zero query vector adds exactly 0 to MaxSim."""
    return _gather_padded(queries, dim, device, repeat_last=False)


def pad_documents(documents: list[torch.Tensor], dim: int, device) -> torch.Tensor:
    """(C, Ld_max, dim), each document padded by repeating its last vector: a repeated vector never
    changes a max, so no mask is needed. Empty documents become zeros (score 0)."""
    return _gather_padded(documents, dim, device, repeat_last=True)


def _gather_padded(items: list[torch.Tensor], dim: int, device, repeat_last: bool) -> torch.Tensor:
    """Pad with one concatenation and one gather (no per-item copies); row ``-1`` of the
    concatenation is a zero vector used for empty items (and for all padding when not repeating)."""
    lengths = torch.tensor([x.shape[0] for x in items], dtype=torch.long)
    width = max(int(lengths.max()) if len(items) else 0, 1)
    flat = torch.cat([x.to(device) for x in items] + [torch.zeros(1, dim, device=device)])
    zero_row = flat.shape[0] - 1
    starts = (torch.cumsum(lengths, 0) - lengths)[:, None]
    positions = torch.arange(width)[None, :]
    if repeat_last:
        index = starts + torch.minimum(positions, (lengths - 1).clamp(min=0)[:, None])
        index[lengths == 0] = zero_row
    else:
        index = torch.where(positions < lengths[:, None], starts + positions, zero_row)
    return flat[index.to(device)]


def _chunks_by_length(lengths: np.ndarray, budget_tokens: int) -> list[np.ndarray]:
    """Groups of document indices, length-sorted, each padding to at most ``budget_tokens``."""
    order = np.argsort(lengths, kind="stable")
    chunks, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * max(int(lengths[order[end]]), 1) <= budget_tokens:
            end += 1
        chunks.append(order[start:end])
        start = end
    return chunks


@torch.inference_mode()
def maxsim(queries, documents, block_elements: int = DEFAULT_BLOCK_ELEMENTS, device=None,
           dtype: torch.dtype = torch.float32) -> np.ndarray:
    """MaxSim matrix: ``queries`` (Nq items of (Lq_i, D)) x ``documents`` (Nd items of (Ld_j, D))
    -> (Nq, Nd) float32. Memory stays near ``block_elements`` * 4 bytes plus one padded group of
    ``GROUP_TOKENS`` document vectors, whatever Nd is.
    ``dtype=torch.bfloat16`` multiplies in bfloat16 (float32 sums; each similarity rounded to 8
    bits, so a score moves by ~1e-3 per query vector): 2-4x faster on CPUs with AVX512-BF16/AMX."""
    q_list, d_list = as_tensor_list(queries, "queries"), as_tensor_list(documents, "documents")
    scores = np.zeros((len(q_list), len(d_list)), dtype=np.float32)
    if not q_list or not d_list:
        return scores
    dim = q_list[0].shape[1]
    if d_list[0].shape[1] != dim:
        raise InvalidInputError(f"queries have dim {dim} but documents have dim {d_list[0].shape[1]}.")
    device = device or q_list[0].device
    q_pad = pad_queries(q_list, dim, device)  # (Nq, Lq, D)
    n_q, l_q = q_pad.shape[:2]
    q_rows_per_block = max(1, min(n_q, block_elements // max(l_q, 1) // 64))
    lengths = np.array([d.shape[0] for d in d_list])
    for q_start in range(0, n_q, q_rows_per_block):
        q_block = q_pad[q_start: q_start + q_rows_per_block]
        q_flat = q_block.reshape(-1, dim).T.contiguous().to(dtype)  # (D, nq*Lq)
        budget = max(1, block_elements // q_flat.shape[1])
        for idx in _chunks_by_length(lengths, max(budget, GROUP_TOKENS)):
            d_pad = pad_documents([d_list[i] for i in idx], dim, device).to(dtype)  # (C, Ld, D)
            best = torch.empty(len(idx), q_flat.shape[1], dtype=dtype, device=device)  # (C, nq*Lq)
            step = max(1, budget // d_pad.shape[1])
            for s in range(0, len(idx), step):  # sim blocks of ~block_elements: the max reads them from cache
                torch.amax(torch.matmul(d_pad[s: s + step], q_flat), dim=1, out=best[s: s + step])
            sums = best.float().view(len(idx), q_block.shape[0], l_q).sum(-1)  # (C, nq)
            scores[q_start: q_start + q_block.shape[0], idx] = sums.T.cpu().numpy()
    return scores


@torch.inference_mode()
def maxsim_pairwise(queries, documents, batch_size: int = 256) -> np.ndarray:
    """MaxSim of ``queries[i]`` with ``documents[i]`` -> (n,) float32."""
    q_list, d_list = as_tensor_list(queries, "queries"), as_tensor_list(documents, "documents")
    if len(q_list) != len(d_list):
        raise InvalidInputError("pairwise scoring needs as many queries as documents, "
                                f"got {len(q_list)} and {len(d_list)}.")
    out = np.zeros(len(q_list), dtype=np.float32)
    for start in range(0, len(q_list), batch_size):
        qs, ds = q_list[start: start + batch_size], d_list[start: start + batch_size]
        if not qs:
            continue
        dim = qs[0].shape[1]
        q_pad, d_pad = pad_queries(qs, dim, qs[0].device), pad_documents(ds, dim, qs[0].device)
        sim = torch.bmm(q_pad, d_pad.transpose(1, 2))  # (b, Lq, Ld)
        out[start: start + len(qs)] = sim.amax(-1).sum(-1).cpu().numpy()
    return out


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a (Nq, Nd) score matrix -> (indices, scores), each (Nq, min(k, Nd)), best
    first; equal scores keep the lower column index first (a stable sort, O(Nd log Nd) per row)."""
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}.")
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(scores, idx, axis=1)
