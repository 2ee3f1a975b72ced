"""Differentiable MaxSim over padded token embeddings (the training-side twin of ``maxsim.scoring``).

MaxSim(q, d) = sum over the query's scored vectors i of max over the document's scored vectors j
of <q_i, d_j>. Masks are the model's scoring masks (``model(features, task)["attention_mask"]``),
so query expansion and the document skiplist count exactly as at inference. A document with no
scored vector scores 0. Scores are float32 whatever the embedding dtype (bf16 under autocast).
"""

from __future__ import annotations

import torch


def embed(model, features: dict, task: str, buckets: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model(features, task)`` -> (token embeddings (B, T, D), scoring mask (B, T) bool).

    ``buckets`` > 1 (documents only): rows are sorted by length and embedded in that many forwards,
    each cut to its own longest row, so short documents do not pay for the batch's longest one.
    Attention ignores padding, so the result equals one forward (up to float rounding); outputs are
    zero-padded back to width T with a False mask. Queries are never cut: expansion tokens sit in
    the padding.
    """
    rows = features["input_ids"].shape[0]
    if task != "document" or buckets <= 1 or rows < 2:
        out = model(dict(features), task)  # a copy: the model's modules write into the dict they receive
        return out["token_embeddings"], out["attention_mask"].bool()
    lengths = features["attention_mask"].sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    width = features["input_ids"].shape[1]
    embeddings, masks = [], []
    for chunk in torch.tensor_split(order, min(buckets, rows)):
        cut = max(int(lengths[chunk[0]]), 1)
        out = model({k: v[chunk][:, :cut] for k, v in features.items()}, task)
        pad = width - cut
        embeddings.append(torch.nn.functional.pad(out["token_embeddings"], (0, 0, 0, pad)))
        masks.append(torch.nn.functional.pad(out["attention_mask"].bool(), (0, pad)))
    inverse = torch.argsort(order)
    return torch.cat(embeddings)[inverse], torch.cat(masks)[inverse]


def _reduce(sim: torch.Tensor, q_mask: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """sim (..., Tq, Td); q_mask broadcastable to (..., Tq); d_mask to (..., 1, Td) -> (...) float32."""
    sim = sim.float().masked_fill(~d_mask, torch.finfo(torch.float32).min)
    best = sim.amax(-1)
    best = torch.where(d_mask.any(-1), best, torch.zeros_like(best))  # empty document -> 0
    return (best * q_mask).sum(-1)


def maxsim_matrix(q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """Every query against every document: q (Bq, Tq, D), q_mask (Bq, Tq) bool, d (Bd, Td, D),
    d_mask (Bd, Td) bool -> (Bq, Bd) float32, differentiable."""
    sim = torch.einsum("aqh,bth->abqt", q, d)
    return _reduce(sim, q_mask[:, None, :], d_mask[None, :, None, :])


def maxsim_grouped(q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """Each query against its own N documents: q (B, Tq, D), q_mask (B, Tq) bool,
    d (B, N, Td, D), d_mask (B, N, Td) bool -> (B, N) float32, differentiable."""
    sim = torch.einsum("bqh,bnth->bnqt", q, d)
    return _reduce(sim, q_mask[:, None, :], d_mask[:, :, None, :])


def group_scores(model, batch: dict, buckets: int = 1) -> torch.Tensor:
    """Embed a collated batch (``query``: B rows, ``document``: B*N rows, query-major; documents in
    ``buckets`` length buckets, see ``embed``) and score each query against its own documents -> (B, N) float32."""
    q, q_mask = embed(model, batch["query"], "query")
    d, d_mask = embed(model, batch["document"], "document", buckets)
    n = d.shape[0] // q.shape[0]
    return maxsim_grouped(q, q_mask, d.view(q.shape[0], n, *d.shape[1:]), d_mask.view(q.shape[0], n, -1))
