"""The service's per-request limits and its defaults (a module of its own: ``maxsim serve`` reads
them without loading the service)."""

from __future__ import annotations

from dataclasses import dataclass

from maxsim.search.limits import MAX_ID_CHARS, MAX_LIST, MAX_METADATA_BYTES, MAX_METADATA_DEPTH

WRITER_NICENESS = 10  # niceness added to the writer thread
READERS = 2  # search workers and reader threads
LOCK_WAIT = 10.0  # seconds a write may wait to start (the folder's lock, earlier writes)
MAX_QUEUE = 256  # requests waiting per queue (searches, other reads, writes) before 503
BATCH_WAIT = 0.002  # seconds a search batch waits for companions when it is not full
BATCH_QUERIES = 64  # queries per search batch


@dataclass(frozen=True)
class Limits:
    """Per-request limits. Over one: 413 naming it (``max_k``: 422). Sizes in characters unless
    they say bytes; ``max_response_chars`` is the budget of texts, metadata and passages in one
    search answer (hits past it come without them, see docs/server.md). A document may be long
    (``max_document_chars``: it is split into passages as ``maxsim index`` splits files); queries
    stay short (``max_text_chars``). ``max_body_bytes`` holds one document of the largest size even
    written with ``\\uXXXX`` escapes (6 bytes a character)."""

    max_batch: int = 64                  # queries per search, documents per add
    max_text_chars: int = 20_000         # characters per query (search, explain, rerank texts)
    max_document_chars: int = 5_000_000  # characters per document added or upserted
    max_body_bytes: int = 32 << 20       # whole request body
    max_k: int = 1000
    max_list: int = MAX_LIST             # documents per page of GET /documents
    max_hits: int = 10_000               # k x queries in one search
    max_id_chars: int = MAX_ID_CHARS     # one document id (maxsim.search.limits: one place for all)
    max_metadata_bytes: int = MAX_METADATA_BYTES  # one document's metadata (or a filter) as UTF-8 JSON
    max_metadata_depth: int = MAX_METADATA_DEPTH  # nesting of dicts and lists in metadata (or a filter)
    max_response_chars: int = 8 << 20
