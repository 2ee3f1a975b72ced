"""The MaxSim alignment of a query and a document, token by token (for ``Retriever.explain`` and
highlighting): which document token each query token picked, and the dot product it scored.

Positions are those of the model's preprocessing (``token_layout``: prompt, special tokens,
truncation, query expansion) and the scoring mask says which of them have vectors (documents skip
punctuation). The vectors are the model's ``encode`` output, the same path as search, one per
scored position in order, or given by the caller (an exact index's stored vectors), so the
alignment's total is the score search gave.
"""

from __future__ import annotations

import numpy as np

from maxsim.errors import InvalidInputError


def token_layout(model, text: str, task: str) -> dict:
    """One text -> ``tokens`` (T,) str, ``ids`` (T,) int, ``scored`` (T,) bool (the positions that
    get a vector), ``spans`` (T,) of (start, end) character offsets in ``text`` or None (special,
    prompt, expansion tokens); no forward pass. An encoder may answer it itself
    (``model.token_layout``, as ``maxsim.models.frozen.FrozenEncoder`` does)."""
    own = getattr(model, "token_layout", None)
    if own is not None:
        return own(text, task)
    from maxsim.models.modules.mask import MultiVectorMask

    features = model.preprocess([text], task)
    ids = features["input_ids"][0].tolist()
    for step in model.steps:  # the scoring mask reads ids and the attention mask only
        if isinstance(step, MultiVectorMask):
            features = step(features, task)
    return {"tokens": model.tokenizer.convert_ids_to_tokens(ids), "ids": ids,
            "scored": features["attention_mask"][0].bool().cpu().numpy(),
            "spans": character_spans(model, text, task, ids)}


def token_vectors(model, text: str, task: str) -> dict:
    """``token_layout`` plus ``vectors`` (T, dim) float32: the model's vectors at the scored positions
    (rows elsewhere are zero)."""
    layout = token_layout(model, text, task)
    kept = model.encode([text], task=task)[0]
    if len(kept) != int(layout["scored"].sum()):
        raise InvalidInputError(f"this model does not give one vector per {task} token (it pools them): its "
                                "matches cannot be explained token by token.")
    vectors = np.zeros((len(layout["ids"]), kept.shape[1]), dtype=np.float32)
    vectors[layout["scored"]] = kept
    return {**layout, "vectors": vectors}


def character_spans(model, text: str, task: str, ids: list[int]) -> list[tuple[int, int] | None]:
    """(start, end) of each position's token in ``text``; None where the token is not from ``text``.
    Needs a fast tokenizer (offsets); otherwise all None."""
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        return [None] * len(ids)
    prompt = model.prompts.get(task, "")
    with model.transformer.tokenizer_lock:  # truncation is the tokenizer's state, shared by threads
        encoded = tokenizer(prompt + text, add_special_tokens=True, return_offsets_mapping=True, truncation=True,
                            max_length=max(len(ids), 2))
    return [_span(encoded, position, token_id, len(prompt)) for position, token_id in enumerate(ids)]


def _span(encoded, position: int, token_id: int, prompt: int) -> tuple[int, int] | None:
    if position >= len(encoded["input_ids"]) or encoded["input_ids"][position] != token_id:
        return None
    start, end = encoded["offset_mapping"][position]
    return (start - prompt, end - prompt) if end > start and start >= prompt else None


def explain_alignment(model, query: str, document: str, query_vectors: np.ndarray | None = None,
                      document_vectors: np.ndarray | None = None) -> dict:
    """MaxSim of ``query`` against ``document``, explained. ``query_vectors`` / ``document_vectors``
    (n, dim) float32: their vectors when the caller has them (else encoded here).

    Returns ``query_tokens`` (one per query vector), ``query_spans``; ``document_tokens`` (every
    position), ``document_scored`` (bool per position), ``document_spans``; ``alignment``: per
    query vector ``{"query_token", "document_index", "document_token", "score"}`` where
    ``document_index`` indexes ``document_tokens`` (None when the document has no vectors, or when
    its vectors are not one per token: a model that pools documents); ``score``: the MaxSim total
    (float), the sum of the alignment scores.
    """
    q, d = token_layout(model, query, "query"), token_layout(model, document, "document")
    q_vectors = model.encode_query([query])[0] if query_vectors is None else query_vectors
    d_vectors = model.encode_document([document])[0] if document_vectors is None else document_vectors
    q_positions, d_positions = np.flatnonzero(q["scored"]), np.flatnonzero(d["scored"])
    if len(q_positions) != len(q_vectors):
        raise InvalidInputError("this model does not give one vector per query token (it pools queries): "
                                "its matches cannot be explained token by token.")
    tokens_known = len(d_positions) == len(d_vectors)
    sims = np.asarray(q_vectors, np.float32) @ np.asarray(d_vectors, np.float32).T  # (query vectors, document vectors)
    alignment = []
    for row, q_pos in enumerate(q_positions):
        best = int(np.argmax(sims[row])) if len(d_vectors) else None
        d_pos = int(d_positions[best]) if best is not None and tokens_known else None
        alignment.append({"query_token": q["tokens"][q_pos], "document_index": d_pos,
                          "document_token": None if d_pos is None else d["tokens"][d_pos],
                          "score": 0.0 if best is None else float(sims[row, best])})
    return {"query_tokens": [q["tokens"][p] for p in q_positions],
            "query_spans": [q["spans"][p] for p in q_positions],
            "document_tokens": d["tokens"], "document_scored": [bool(s) for s in d["scored"]],
            "document_spans": d["spans"], "alignment": alignment,
            "score": float(sum(a["score"] for a in alignment))}
