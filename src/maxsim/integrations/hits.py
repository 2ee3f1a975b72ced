"""What the framework adapters share: one query's search hits and the content each result carries."""

from __future__ import annotations

import os

from maxsim.errors import InvalidInputError
from maxsim.search.hits import Hit

CONTENTS = ("text", "passage")  # the whole document, or its best-scoring passage


def collection_of(value):
    """A collection given as itself, or as the path of its folder (opened with ``maxsim.open``)."""
    if isinstance(value, (str, os.PathLike)):
        from maxsim.opener import open_collection

        return open_collection(value)
    return value


def check_content(content: str) -> str:
    if content not in CONTENTS:
        raise InvalidInputError(f"content must be one of {CONTENTS}, got {content!r}.")
    return content


def search_one(collection, query: str, k: int, filter: dict | None, hybrid: bool) -> list[Hit]:
    """``collection.search`` of one query string (a ``maxsim.Collection``: a folder or a sharded one)."""
    if not isinstance(query, str):
        raise InvalidInputError(f"the query must be a string, got {type(query).__name__}.")
    return collection.search(query, k=k, hybrid=hybrid, filter=filter)[0]


def content_of(hit: Hit, content: str) -> str:
    """The hit's whole ``text``, or the text of its best ``passage``."""
    return hit.passage.text if content == "passage" else hit.text


def passage_span(hit: Hit) -> dict:
    """``{"index", "start", "end"}`` of the best passage: its ordinal and character span in the text."""
    return {"index": hit.passage.index, "start": hit.passage.start, "end": hit.passage.end}
