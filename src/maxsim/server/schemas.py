"""Request bodies and answers of the service (its size limits: ``maxsim.server.limits``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from maxsim.search.hits import Document, Hit, Passage
from maxsim.server.limits import Limits  # noqa: F401 - the service's limits, imported from here too


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[str] = Field(min_length=1, description="Query texts.")
    k: int = Field(10, ge=1, strict=True, description="Hits per query.")
    hybrid: bool = Field(False, strict=True, description="Fuse BM25 with MaxSim (index built with --hybrid).")
    filter: dict | None = Field(None, description='Mongo-style metadata filter, e.g. {"lang": "en", '
                                                  '"year": {"$gte": 2020}} (see docs/search.md).')
    fusion: Literal["rrf", "convex", "score"] = Field("rrf", description="How a hybrid search fuses BM25 and "
                                                                         "MaxSim (docs/search.md, Fusion).")
    alpha: float | None = Field(None, ge=0, le=1, description="Convex fusion: the weight of MaxSim (default 0.75).")
    prf: bool | dict | None = Field(None, description='ColBERT-PRF: true (defaults) or {"fb_docs": 3, "clusters": 24, '
                                                      '"expansion": 10, "beta": 1.0} (see docs/search.md).')
    excerpts: bool = Field(False, strict=True, description="Also answer `excerpts`: per hit what a hit list shows "
                                                           "(as /explain gives it), in this one request.")


IMAGE = Field(None, description="A page collection: the page, the base64 of a PNG, JPEG or WebP file (then "
                                "`text` is its text layer, optional).")
TEXT = Field("", description="The document's text (a page collection: the page's text layer, optional).")


class NewDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, description="Omit on every document to get generated ids.")
    text: str = TEXT
    image: str | None = IMAGE
    metadata: dict | None = None


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[NewDocument] = Field(min_length=1)


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = TEXT
    image: str | None = IMAGE
    metadata: dict | None = None


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    id: str = Field(min_length=1, description="Document id.")


# -- answers (the response_model of every JSON route, so /docs and /openapi.json show real shapes) --
class SearchAnswer(BaseModel):
    results: list[list[Hit]] = Field(description="Per query, its hits best first.")
    omitted: int = Field(description="Hits past the answer budget, sent without text, metadata and passage text.")
    excerpts: list[list[Shown | None]] | None = Field(None, description="With excerpts=true, per hit of `results`: "
                                                      "null for a hit past the answer budget or removed since.")


class Shown(BaseModel):
    passage: dict[str, int] = Field(description="The passage the alignment is over: index, start, end.")
    excerpt: Excerpt = Field(description="The window of the text to show, with its highlights.")
    matched: list[str] = Field(description="Query words with the document word each picked.")


class Added(BaseModel):
    ids: list[str] = Field(description="The ids of the added documents, in request order.")
    documents: int = Field(description="Documents in the collection after the commit.")


class Written(BaseModel):
    id: str
    documents: int = Field(description="Documents in the collection after the commit.")


class Deleted(BaseModel):
    deleted: str
    documents: int = Field(description="Documents in the collection after the commit.")


class DocumentPage(BaseModel):
    documents: list[Document] = Field(description="The documents matching the filter, in id order.")
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last page.")


class Highlight(BaseModel):
    start: int = Field(description="Offset in the excerpt's text.")
    end: int
    queries: list[int] = Field(description="The query vectors that picked this token.")


class Excerpt(BaseModel):
    start: int = Field(description="Character offset of the excerpt in the document text.")
    end: int
    text: str = Field(description="The window to show ('…' marks cuts).")
    highlights: list[Highlight]


class Step(BaseModel):
    query_token: str
    document_index: int | None = Field(description="Index into document_tokens (null: no document vectors).")
    document_token: str | None
    score: float


class PageMap(BaseModel):
    rows: int = Field(description="Rows of the page's patch grid (top to bottom).")
    cols: int = Field(description="Columns of the grid (left to right); the grid covers the whole page.")
    heatmaps: list[list[list[float | None]]] = Field(
        description="Per query token, rows x cols similarities of that token with the page vector of each cell "
                    "(null: a cell whose patch was not kept).")
    heatmap: list[list[float | None]] = Field(description="The sum of the heatmaps over the query tokens.")


class Explanation(BaseModel):
    id: str
    text: str = Field(description="The document's text, of the same version as the alignment.")
    query_tokens: list[str]
    query_spans: list[tuple[int, int] | None]
    document_tokens: list[str]
    document_scored: list[bool]
    document_spans: list[tuple[int, int] | None] = Field(description="Character spans in the whole text.")
    alignment: list[Step]
    score: float = Field(description="MaxSim of the query and the best passage.")
    passage: Passage = Field(description="The best passage (the indexed chunk the alignment is over).")
    excerpt: Excerpt = Field(description="The window of the text to show, with its highlights.")
    matched: list[str] = Field(description="Query words with the document word each picked.")
    page: PageMap | None = Field(None, description="A page: the similarity maps over its patch grid "
                                                   "(document_tokens are then its vectors, by grid cell).")


class Stats(BaseModel):
    model_config = ConfigDict(extra="allow")  # a sharded collection adds shards and shard_documents
    documents: int
    passages: int
    tokens: int
    split_documents: int
    bytes_on_disk: int
    version: int
    kind: str
    model: str
    dim: int
    modality: str = Field("text", description='"text", or "image": a collection of pages.')
    hybrid: bool
    pool_factor: int
    page_bytes: dict | None = Field(None, description="Pages: bytes of the index files and of the page images.")
    limits: dict = Field(description="The request limits of this service.")


class Health(BaseModel):
    status: str
    documents: int
    auth: bool = Field(description="Whether the other routes need an API key.")
    modality: str = Field("text", description='"text", or "image": a collection of pages (shown as images).')
