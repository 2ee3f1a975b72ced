"""Request bodies of the service, and its size limits."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class Limits:
    """Per-request limits; exceeding one answers 413. ``max_k`` bounds ``k`` (422 above it)."""

    max_batch: int = 64          # queries per search, documents per add
    max_text_chars: int = 20_000  # characters per query or document
    max_body_bytes: int = 4 << 20  # whole request body
    max_k: int = 1000


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[str] = Field(min_length=1, description="Query texts.")
    k: int = Field(10, ge=1, description="Hits per query.")
    hybrid: bool = Field(False, description="Fuse BM25 with MaxSim (index built with --hybrid).")


class NewDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, description="Omit on every document to get generated ids.")
    text: str
    metadata: dict | None = None


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[NewDocument] = Field(min_length=1)


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    id: str = Field(min_length=1, description="Document id.")
