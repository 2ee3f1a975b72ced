"""Contrastive losses: in-batch and hard negatives, cross-entropy over MaxSim scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maxsim.errors import InvalidInputError
from maxsim.losses.scores import embed, maxsim_matrix


def contrastive_loss(q: torch.Tensor, q_mask: torch.Tensor, d: torch.Tensor, d_mask: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """q (B, Tq, D), d (B*N, Td, D) query-major with each query's positive first -> scalar
    cross-entropy of MaxSim(q_b, every document) / temperature against column b*N."""
    scores = maxsim_matrix(q, q_mask, d, d_mask) / temperature
    n_docs = d.shape[0] // q.shape[0]
    target = torch.arange(q.shape[0], device=scores.device) * n_docs
    return F.cross_entropy(scores, target)


class Contrastive(torch.nn.Module):
    """In-batch + hard-negative contrastive loss (ColBERT, Khattab & Zaharia 2020; PyLate ``Contrastive``).

    Input: a collated batch ``{"query": features (B rows), "document": features (B*N rows)}`` whose rows
    are (query, positive, negative_1 .. negative_{N-1}). Every query is scored against all B*N documents
    of the batch (its own hard negatives and the other queries' documents are negatives)::

        loss = mean over b of -log softmax_j(MaxSim(q_b, d_j) / temperature)[b*N]

    Under torchrun each process uses its own batch's documents as negatives. ``document_buckets``:
    documents are embedded in that many length-sorted forwards (less padding, same result).
    """

    def __init__(self, model, temperature: float = 1.0, document_buckets: int = 4):
        super().__init__()
        if not temperature > 0:
            raise InvalidInputError(f"temperature must be positive, got {temperature}.")
        self.model, self.temperature, self.document_buckets = model, float(temperature), int(document_buckets)

    def forward(self, batch: dict) -> torch.Tensor:
        q, q_mask = embed(self.model, batch["query"], "query")
        d, d_mask = embed(self.model, batch["document"], "document", self.document_buckets)
        return contrastive_loss(q, q_mask, d, d_mask, self.temperature)


class CachedContrastive(Contrastive):
    """``Contrastive`` with gradient caching (Gao et al. 2021, arXiv:2101.06983): a large batch on small memory.

    Same inputs, value and gradients as ``Contrastive``. Queries and documents are embedded in chunks
    of ``mini_batch_size`` rows without autograd; the loss is computed on the full batch of detached
    embeddings and its gradient with respect to them is cached. The returned loss carries a hook:
    when the trainer calls ``backward``, each chunk is embedded again with autograd (same RNG state,
    hence the same dropout; same autocast setting) and back-propagated with its cached gradient.
    Peak activation memory is that of one chunk.
    """

    def __init__(self, model, temperature: float = 1.0, mini_batch_size: int = 32, document_buckets: int = 4):
        super().__init__(model, temperature, document_buckets)
        if mini_batch_size <= 0:
            raise InvalidInputError(f"mini_batch_size must be positive, got {mini_batch_size}.")
        self.mini_batch_size = int(mini_batch_size)

    def forward(self, batch: dict) -> torch.Tensor:
        chunks = [(task, self._slice(batch[key], start))
                  for key, task in (("query", "query"), ("document", "document"))
                  for start in range(0, len(batch[key]["input_ids"]), self.mini_batch_size)]
        states, embeddings, masks = [], [], {"query": [], "document": []}
        with torch.no_grad():
            for task, features in chunks:
                states.append(_rng_state(features["input_ids"].device))
                emb, mask = embed(self.model, features, task, self.document_buckets)
                embeddings.append(emb.detach().requires_grad_())
                masks[task].append(mask)
        n_query = sum(1 for task, _ in chunks if task == "query")
        q, d = torch.cat(embeddings[:n_query]), torch.cat(embeddings[n_query:])
        loss = contrastive_loss(q, torch.cat(masks["query"]), d, torch.cat(masks["document"]), self.temperature)
        if not torch.is_grad_enabled():
            return loss
        grads = torch.autograd.grad(loss, embeddings)
        device_type = q.device.type
        autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        out = loss.detach().requires_grad_()
        out.register_hook(lambda g: self._replay(g, chunks, states, grads, device_type, autocast))
        return out

    def _replay(self, grad_out, chunks, states, grads, device_type, autocast) -> None:
        """Re-embed each chunk with autograd and back-propagate its cached gradient times ``grad_out``."""
        enabled, dtype = autocast
        for (task, features), state, grad in zip(chunks, states, grads):
            with torch.random.fork_rng(devices=_rng_devices(features["input_ids"].device)):
                _set_rng_state(state)
                with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
                    emb, _ = embed(self.model, features, task, self.document_buckets)
            torch.autograd.backward(emb, grad * grad_out)

    def _slice(self, features: dict, start: int) -> dict:
        return {k: v[start: start + self.mini_batch_size] for k, v in features.items()}


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _rng_state(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda, device


def _set_rng_state(state: tuple) -> None:
    cpu, cuda, device = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
