"""Request bodies of the service, and its size limits."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from maxsim.search.limits import MAX_ID_CHARS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH


@dataclass(frozen=True)
class Limits:
    """Per-request limits. Over one: 413 naming it (``max_k``: 422). Sizes in characters unless
    they say bytes; ``max_response_chars`` is the budget of texts, metadata and passages in one
    search answer (hits past it come without them, see docs/server.md)."""

    max_batch: int = 64               # queries per search, documents per add
    max_text_chars: int = 20_000      # characters per query or document
    max_body_bytes: int = 4 << 20     # whole request body
    max_k: int = 1000
    max_hits: int = 10_000            # k x queries in one search
    max_id_chars: int = MAX_ID_CHARS  # one document id (maxsim.search.limits: one place for all)
    max_metadata_bytes: int = MAX_METADATA_BYTES  # one document's metadata (or a filter) as UTF-8 JSON
    max_metadata_depth: int = MAX_METADATA_DEPTH  # nesting of dicts and lists in metadata (or a filter)
    max_response_chars: int = 8 << 20


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[str] = Field(min_length=1, description="Query texts.")
    k: int = Field(10, ge=1, strict=True, description="Hits per query.")
    hybrid: bool = Field(False, strict=True, description="Fuse BM25 with MaxSim (index built with --hybrid).")
    filter: dict | None = Field(None, description='Mongo-style metadata filter, e.g. {"lang": "en", '
                                                  '"year": {"$gte": 2020}} (see docs/search.md).')
    prf: bool | dict | None = Field(None, description='ColBERT-PRF: true (defaults) or {"fb_docs": 3, "clusters": 24, '
                                                      '"expansion": 10, "beta": 1.0} (see docs/search.md).')


class NewDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, description="Omit on every document to get generated ids.")
    text: str
    metadata: dict | None = None


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[NewDocument] = Field(min_length=1)


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    metadata: dict | None = None


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    id: str = Field(min_length=1, description="Document id.")
