"""Checks of request values against the service's ``Limits``, before anything is read or written.

Each raises a ``maxsim.errors`` type naming the field: ``LimitExceededError`` (413) for a value
over a limit, ``InvalidInputError`` (422) for one that cannot be stored or answered, such as a
lone surrogate (it cannot be encoded as UTF-8) or NaN in metadata (not JSON).
"""

from __future__ import annotations

import json
import re

from maxsim.errors import InvalidInputError, LimitExceededError
from maxsim.search.hits import Hit
from maxsim.server.limits import Limits

SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, field: str, limit: int) -> None:
    """``text`` encodable as UTF-8 and at most ``limit`` characters."""
    if len(text) > limit:
        raise LimitExceededError(f"{field} has {len(text)} characters; the limit is {limit}: split or shorten it.")
    if not text.strip():
        raise InvalidInputError(f"{field} is empty: send some text.")
    no_surrogates(text, field)


def check_texts(texts: list[str], plural: str, singular: str, limits: Limits, max_chars: int) -> None:
    """At most ``max_batch`` texts, each passing ``check_text`` with at most ``max_chars`` characters."""
    check_batch(len(texts), plural, limits)
    for i, text in enumerate(texts):
        check_text(text, f"{singular} {i}", max_chars)


def check_batch(n: int, plural: str, limits: Limits) -> None:
    """At most ``max_batch`` items in one request."""
    if n > limits.max_batch:
        raise LimitExceededError(f"{n} {plural} in one request; the limit is {limits.max_batch}: split the request.")


def check_id(doc_id: str, field: str, limits: Limits) -> None:
    """A non-empty id of at most ``max_id_chars`` characters, encodable as UTF-8."""
    if len(doc_id) > limits.max_id_chars:
        raise LimitExceededError(f"{field} has {len(doc_id)} characters; the limit is {limits.max_id_chars}: "
                                 "use a shorter id.")
    if not doc_id:
        raise InvalidInputError(f"{field} is empty: ids are non-empty strings.")
    no_surrogates(doc_id, field)


def check_json(value, field: str, limits: Limits) -> None:
    """Metadata or a filter: JSON without NaN or lone surrogates, at most ``max_metadata_bytes``
    as UTF-8 and nested at most ``max_metadata_depth`` deep (so it survives every answer it is in)."""
    if value is None:
        return
    if depth(value, limits.max_metadata_depth) > limits.max_metadata_depth:
        raise LimitExceededError(f"{field} is nested more than {limits.max_metadata_depth} levels deep: flatten it.")
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except UnicodeEncodeError:  # a ValueError too: caught first
        raise InvalidInputError(f"{field} holds a lone surrogate (an unpaired \\ud800-\\udfff), which UTF-8 "
                                "cannot encode: fix the text.") from None
    except ValueError:
        raise InvalidInputError(f"{field} holds NaN or Infinity, which JSON cannot carry: use a string or null.") \
            from None
    if size > limits.max_metadata_bytes:
        raise LimitExceededError(f"{field} is {size} bytes as JSON; the limit is {limits.max_metadata_bytes}: "
                                 "keep large values elsewhere.")


def depth(value, stop: int) -> int:
    """Nesting depth of dicts/lists in ``value`` (a scalar is 0, ``{}`` 1), counted up to ``stop + 1``."""
    level, layer = 0, [value]
    while level <= stop:
        containers = [item for item in layer if isinstance(item, (dict, list))]
        if not containers:
            break
        level += 1
        layer = [child for item in containers for child in (item.values() if isinstance(item, dict) else item)]
    return level


def no_surrogates(text: str, field: str) -> None:
    if SURROGATE.search(text):
        raise InvalidInputError(f"{field} holds a lone surrogate (an unpaired \\ud800-\\udfff), which UTF-8 "
                                "cannot encode: fix the text.")


def fit_answer(results: list[list[Hit]], budget: int) -> tuple[list[list[Hit]], int]:
    """A search answer kept near ``budget`` characters of texts, metadata and passage texts: hits
    past it (in query order, best first) come without them (``Hit.without_texts``). Returns the
    answer and how many hits were cut so."""
    used, omitted, out = 0, 0, []
    for hits in results:
        kept = []
        for hit in hits:
            used += hit.answer_chars()
            omitted += used > budget
            kept.append(hit.without_texts() if used > budget else hit)
        out.append(kept)
    return out, omitted
