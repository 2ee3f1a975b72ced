"""Present a hit from its MaxSim explanation: the excerpt to show (the window of the text with the
largest MaxSim contribution, not to be confused with the indexed passage) and the query terms it matched.

``explanation`` is what ``Retriever.explain(query, doc_id)`` returns: ``query_spans`` (one per query
vector), ``document_spans`` (one per document position) as (start, end) character offsets or None,
and ``alignment``: per query vector the picked ``document_index`` and its ``score``.
"""

from __future__ import annotations

EXCERPT_CHARS = 240


def shown(query: str, text: str, explanation: dict) -> dict:
    """What a hit list shows of a hit: its ``passage`` (without text), ``excerpt`` and the query terms
    ``matched``, from ``explanation`` of ``query`` with the document of ``text``."""
    passage = explanation["passage"]
    return {"passage": {"index": passage.index, "start": passage.start, "end": passage.end},
            "excerpt": best_excerpt(text, explanation), "matched": matched_terms(query, text, explanation)}


def best_excerpt(text: str, explanation: dict, width: int = EXCERPT_CHARS) -> dict:
    """The ``width``-character window of ``text`` holding the largest summed MaxSim contribution.

    Returns ``{"start", "end", "text", "highlights"}``: the window (snapped to word boundaries, "…"
    marks cuts) and, per picked document token inside it, ``{"start", "end", "queries"}``: its
    offsets in the returned ``text`` and the indices of the query vectors that picked it.
    """
    picked = _picked_spans(explanation)
    if len(text) <= width or not picked:
        start, end = 0, min(len(text), width)
    else:
        start = _best_window_start(picked, width)
        start, end = _snap(text, start, min(len(text), start + width))
    shift = (1 if start > 0 else 0) - start  # the leading "…"
    snippet = ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")
    highlights = [{"start": s + shift, "end": e + shift, "queries": queries}
                  for (s, e), (_, queries) in picked if s >= start and e <= end]
    return {"start": start, "end": end, "text": snippet, "highlights": highlights}


def matched_terms(query: str, text: str, explanation: dict, limit: int = 8) -> list[str]:
    """Query words with the document word each one picked, best score first: ``"lift"`` when the
    words are the same, ``"wing→wings"`` otherwise. Tokens not from the query text (markers,
    expansion) are left out; each query word appears once."""
    terms: dict[str, tuple[float, str]] = {}
    for q_span, step in zip(explanation["query_spans"], explanation["alignment"]):
        index = step["document_index"]
        d_span = None if index is None else explanation["document_spans"][index]
        if q_span is None or d_span is None:
            continue
        q_word, d_word = _word(query, q_span), _word(text, d_span)
        label = q_word if q_word.lower() == d_word.lower() else f"{q_word}→{d_word}"
        if q_word.lower() not in terms or step["score"] > terms[q_word.lower()][0]:
            terms[q_word.lower()] = (step["score"], label)
    ranked = sorted(terms.values(), key=lambda item: -item[0])
    return [label for _, label in ranked[:limit]]


def _picked_spans(explanation: dict) -> list[tuple[tuple[int, int], tuple[float, list[int]]]]:
    """Per document token that some query vector picked, by position in the text:
    ((start, end), (summed positive score, [query vector indices]))."""
    picked: dict[tuple[int, int], tuple[float, list[int]]] = {}
    for q, step in enumerate(explanation["alignment"]):
        index = step["document_index"]
        span = None if index is None else explanation["document_spans"][index]
        if span is not None:
            score, queries = picked.get(tuple(span), (0.0, []))
            picked[tuple(span)] = (score + max(float(step["score"]), 0.0), queries + [q])
    return sorted(picked.items())


def _best_window_start(picked: list, width: int) -> int:
    """Start offset of the window [s, s + width) that holds the most contribution (sliding window),
    moved back so that the picked tokens sit in its middle."""
    best, best_start, total, left = -1.0, 0, 0.0, 0
    for span, (score, _) in picked:
        total += score
        while span[1] - picked[left][0][0] > width:
            total -= picked[left][1][0]
            left += 1
        if total > best:
            best, best_start = total, picked[left][0][0]
    covered_end = max(e for (s, e), _ in picked if s >= best_start and e - best_start <= width)
    return max(0, best_start - (width - (covered_end - best_start)) // 2)


def _snap(text: str, start: int, end: int) -> tuple[int, int]:
    """Move ``start`` forward and ``end`` back to whitespace so that words are not cut."""
    if start > 0 and not text[start - 1].isspace():
        space = text.find(" ", start, start + 20)
        start = space + 1 if space >= 0 else start
    if end < len(text) and not text[end].isspace():
        space = text.rfind(" ", end - 20, end)
        end = space if space > start else end
    return start, end


def _word(text: str, span) -> str:
    """The whole word of ``text`` around the token at ``span`` (word pieces joined)."""
    start, end = span
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return text[start:end]
