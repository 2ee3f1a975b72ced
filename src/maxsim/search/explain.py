"""The MaxSim alignment of a query and a document, token by token (for ``Retriever.explain`` and
highlighting): which document token each query token picked, and the dot product it scored.

Positions are those of the model's preprocessing (``model.preprocess``: prompt, special tokens,
truncation, query expansion); the scoring mask of ``model(features, task)`` says which positions
have vectors (documents skip punctuation), so vectors map back to token positions through it.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.inference_mode()
def token_vectors(model, text: str, task: str) -> dict:
    """One text -> ``tokens`` (T,) str, ``ids`` (T,) int, ``scored`` (T,) bool (positions MaxSim
    uses), ``vectors`` (T, dim) float32 (rows at unscored positions are meaningless), ``spans``
    (T,) of (start, end) character offsets in ``text`` or None (special, prompt, expansion tokens)."""
    features = model.preprocess([text], task)
    ids = features["input_ids"][0].tolist()
    out = model({k: v.to(model.device) for k, v in features.items()}, task)
    return {"tokens": model.tokenizer.convert_ids_to_tokens(ids), "ids": ids,
            "scored": out["attention_mask"][0].cpu().numpy().astype(bool),
            "vectors": out["token_embeddings"][0].float().cpu().numpy(),
            "spans": character_spans(model, text, task, ids)}


def character_spans(model, text: str, task: str, ids: list[int]) -> list[tuple[int, int] | None]:
    """(start, end) of each position's token in ``text``; None where the token is not from ``text``.
    Needs a fast tokenizer (offsets); otherwise all None."""
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        return [None] * len(ids)
    prompt = model.prompts.get(task, "")
    encoded = tokenizer(prompt + text, add_special_tokens=True, return_offsets_mapping=True, truncation=True,
                        max_length=max(len(ids), 2))
    spans = []
    for position, token_id in enumerate(ids):
        same = position < len(encoded["input_ids"]) and encoded["input_ids"][position] == token_id
        start, end = encoded["offset_mapping"][position] if same else (0, 0)
        spans.append((start - len(prompt), end - len(prompt)) if same and end > start and start >= len(prompt)
                     else None)
    return spans


def explain_alignment(model, query: str, document: str) -> dict:
    """MaxSim of ``query`` against ``document``, explained.

    Returns ``query_tokens`` (one per query vector), ``query_spans``; ``document_tokens`` (every
    position), ``document_scored`` (bool per position), ``document_spans``; ``alignment``: per
    query vector ``{"query_token", "document_index", "document_token", "score"}`` where
    ``document_index`` indexes ``document_tokens`` (None when the document has no vectors);
    ``score``: the MaxSim total (float), the sum of the alignment scores.
    """
    q, d = token_vectors(model, query, "query"), token_vectors(model, document, "document")
    q_positions, d_positions = np.flatnonzero(q["scored"]), np.flatnonzero(d["scored"])
    sims = q["vectors"][q_positions] @ d["vectors"][d_positions].T  # (n_query_vectors, n_document_vectors)
    alignment = []
    for row, q_pos in enumerate(q_positions):
        if len(d_positions):
            best = int(np.argmax(sims[row]))
            d_pos, score = int(d_positions[best]), float(sims[row, best])
            alignment.append({"query_token": q["tokens"][q_pos], "document_index": d_pos,
                              "document_token": d["tokens"][d_pos], "score": score})
        else:
            alignment.append({"query_token": q["tokens"][q_pos], "document_index": None,
                              "document_token": None, "score": 0.0})
    return {"query_tokens": [q["tokens"][p] for p in q_positions],
            "query_spans": [q["spans"][p] for p in q_positions],
            "document_tokens": d["tokens"], "document_scored": d["scored"].tolist(),
            "document_spans": d["spans"], "alignment": alignment,
            "score": float(sum(a["score"] for a in alignment))}
