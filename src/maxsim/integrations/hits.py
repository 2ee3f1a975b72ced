"""What the framework adapters share: one query's search hits and the content each result carries."""

from __future__ import annotations

from maxsim.errors import InvalidInputError

CONTENTS = ("text", "passage")  # the whole document, or its best-scoring passage


def check_content(content: str) -> str:
    if content not in CONTENTS:
        raise InvalidInputError(f"content must be one of {CONTENTS}, got {content!r}.")
    return content


def search_one(retriever, query: str, k: int, filter: dict | None, hybrid: bool) -> list[dict]:
    """``retriever.search`` of one query string: hits ``{"id", "score", "text", "metadata", "passage"}``."""
    if not isinstance(query, str):
        raise InvalidInputError(f"the query must be a string, got {type(query).__name__}.")
    return retriever.search(query, k=k, hybrid=hybrid, filter=filter)[0]


def content_of(hit: dict, content: str) -> str:
    """The hit's whole ``text``, or the text of its best ``passage``."""
    return hit["passage"]["text"] if content == "passage" else hit["text"]


def passage_span(hit: dict) -> dict:
    """``{"index", "start", "end"}`` of the best passage: its ordinal and character span in the text."""
    return {key: hit["passage"][key] for key in ("index", "start", "end")}
