"""Checks of the documents users add (ids, texts, metadata), before anything is written.

Every value must survive the JSON answers it will appear in: no lone surrogates, finite numbers,
string keys, bounded size and depth (``maxsim.search.limits``, shared with the service).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from maxsim.errors import InvalidInputError, LimitExceededError
from maxsim.index.checks import check_ids as check_distinct_ids
from maxsim.search.limits import MAX_ID_CHARS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH


def encodable(text: str, what: str) -> str:
    """``text`` if it is valid Unicode (UTF-8 encodable), else InvalidInputError naming ``what``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} holds an invalid character ({exc.reason} at position {exc.start}): "
                                "pass valid Unicode text.") from None
    return text


def check_ids(ids, what: str = "ids") -> list[str]:
    """Distinct, non-empty, encodable string ids of at most ``MAX_ID_CHARS`` characters."""
    ids = check_distinct_ids(ids, what)
    for i, doc_id in enumerate(ids):
        if len(doc_id) > MAX_ID_CHARS:
            raise LimitExceededError(f"{what}[{i}] has {len(doc_id)} characters; ids are limited to "
                                     f"{MAX_ID_CHARS}: use a shorter id (e.g. a hash) and keep the long one "
                                     "in metadata.")
        encodable(doc_id, f"{what}[{i}]")
    return ids


def check_doc_id(doc_id) -> str:
    """One document id: a string (its presence is checked where it is read)."""
    if not isinstance(doc_id, str):
        raise InvalidInputError(f"an id is a string, got {type(doc_id).__name__}.")
    return doc_id


def check_texts(texts, what: str = "texts") -> list[str]:
    """A list of encodable strings (one string or a non-string raises, naming the position)."""
    from maxsim.models.encoder import check_texts as list_of_texts  # here: searches do not load transformers

    texts = list_of_texts(texts)
    for i, text in enumerate(texts):
        encodable(text, f"{what}[{i}]")
    return texts


def check_metadata(metadata, n: int) -> list[dict | None]:
    """One dict (or None) per document, JSON-safe, within the size and depth limits."""
    if metadata is None:
        return [None] * n
    if isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a list with one dict (or None) per text, not one dict.")
    metadata = list(metadata)
    if len(metadata) != n:
        raise InvalidInputError(f"got {len(metadata)} metadata entries for {n} texts: pass one (or None) per text.")
    for i, item in enumerate(metadata):
        if item is None:
            continue
        if not isinstance(item, dict):
            raise InvalidInputError(f"metadata[{i}] is {type(item).__name__}: pass a dict or None.")
        _check_value(item, f"metadata[{i}]", 0)
        size = len(json.dumps(item, ensure_ascii=False).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise LimitExceededError(f"metadata[{i}] is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}: "
                                     "keep large values outside the index.")
    return [item or None for item in metadata]


def _check_value(value, where: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise LimitExceededError(f"{where} is nested deeper than {MAX_METADATA_DEPTH} levels: flatten it.")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where} has a key {key!r} that is not a string: JSON keys are strings.")
            encodable(key, f"{where} key {key[:40]!r}")
            _check_value(item, f"{where}[{key[:40]!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for j, item in enumerate(value):
            _check_value(item, f"{where}[{j}]", depth + 1)
    elif isinstance(value, str):
        encodable(value, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{where} is {value}: JSON has no NaN or infinity; store a number or null.")
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise InvalidInputError(f"{where} is a {type(value).__name__}: metadata values must be JSON "
                                "(str, number, bool, null, list, dict).")


def check_queries(query) -> list[str]:
    """One query string or a list of them -> list; empty or invalid ones raise naming the position."""
    queries = [query] if isinstance(query, str) else query
    if not isinstance(queries, Sequence) or isinstance(queries, bytes):
        raise InvalidInputError(f"query must be a string or a list of strings, got {type(query).__name__}.")
    for i, text in enumerate(queries):
        if not isinstance(text, str):
            raise InvalidInputError(f"query {i} is {type(text).__name__}, not str.")
        if not text.strip():
            raise InvalidInputError(f"query {i} is empty: pass some text to search for.")
        encodable(text, f"query {i}")
    return list(queries)
