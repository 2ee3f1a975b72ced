"""An MCP server over one collection (the official ``mcp`` SDK, ``pip install maxsim[mcp]``): the
tools an assistant calls to search it, read and list its documents, see why a document matched, and
(only when built ``writable``) add, replace and remove documents.

Every tool takes typed arguments (the SDK turns the signatures into JSON schemas) and answers
structured data. A ``maxsim.errors`` error comes back as an MCP tool error (``isError``) whose text
is the library's message. See docs/mcp.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from maxsim.errors import MaxsimError

READ_TOOLS = {"search": "search", "get": "get", "list": "list_documents", "explain": "explain"}  # tool: method
WRITE_TOOLS = {"add": "add", "upsert": "upsert", "remove": "remove"}
INSTRUCTIONS = ("Search a document collection with multi-vector (MaxSim) retrieval: `search` finds documents and "
                "their best passage, `get` reads one, `list` pages through them (with a metadata filter), "
                "`explain` shows which words matched.")
MAX_K = 100
PREVIEW_CHARS = 300  # text shown per document by `list`
READ_CHARS = 20_000  # text returned by one `get` call (a longer text is read in pieces)

Query = Annotated[str, Field(min_length=1, description="What to look for, in natural language.")]
Filter = Annotated[dict[str, Any] | None, Field(description='A metadata filter (Mongo-style, docs/search.md), e.g. '
                                                            '{"lang": "en", "year": {"$gte": 2020}}.')]
Hybrid = Annotated[bool, Field(description="Fuse BM25 keyword ranks with MaxSim (folders built hybrid).")]
DocId = Annotated[str, Field(min_length=1, description="A document id.")]


class PassageOut(BaseModel):
    index: int = Field(description="Ordinal of the passage in its document.")
    start: int = Field(description="Character offset of the passage in the document text.")
    end: int
    text: str


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="MaxSim of the best passage (a fused rank score with hybrid).")
    metadata: dict[str, Any] | None
    passage: PassageOut = Field(description="The document's passage that matched best.")


class DocumentText(BaseModel):
    id: str
    metadata: dict[str, Any] | None
    text: str = Field(description="The text from `start` to `end`.")
    start: int
    end: int
    length: int = Field(description="Characters in the whole text (read the rest with a later start).")


class DocumentPreview(BaseModel):
    id: str
    metadata: dict[str, Any] | None
    preview: str = Field(description=f"The first {PREVIEW_CHARS} characters of the text.")
    length: int


class Pick(BaseModel):
    query_token: str
    document_token: str | None
    score: float


class Explanation(BaseModel):
    id: str
    score: float = Field(description="MaxSim of the query and the best passage: the sum of the picks' scores.")
    passage: PassageOut
    excerpt: str = Field(description="The window of the passage around the picked tokens, **picked** in bold.")
    matched: list[str] = Field(description="Query words with the document word each picked.")
    picks: list[Pick] = Field(description="Per query token, the document token it picked and their similarity.")


class NewDocument(BaseModel):
    id: str | None = Field(None, min_length=1, description="Omit on every document to get generated ids.")
    text: str = Field(min_length=1, description="The text; a long one is split into passages.")
    metadata: dict[str, Any] | None = None


class Replacement(BaseModel):
    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


def create_server(collection, writable: bool = False):
    """The ``mcp`` SDK's ``MCPServer`` over ``collection`` (a ``maxsim.open`` collection) with the
    read tools, and the write tools when ``writable``."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("maxsim", log_level="WARNING", instructions=INSTRUCTIONS)
    tools = CollectionTools(collection)
    for name, method in {**READ_TOOLS, **(WRITE_TOOLS if writable else {})}.items():
        function = getattr(tools, method)
        server.add_tool(function, name=name, description=function.__doc__)
    return server


class CollectionTools:
    """The tools, as methods over one collection (the SDK runs each call on a worker thread)."""

    def __init__(self, collection):
        self.collection = collection

    def search(self, query: Query, k: Annotated[int, Field(ge=1, le=MAX_K, description="Hits to return.")] = 10,
               filter: Filter = None, hybrid: Hybrid = False) -> list[SearchHit]:
        """Find the documents that best match a query, best first, each with its best passage."""
        hits = library(lambda: self.collection.search(query, k=k, hybrid=hybrid, filter=filter))[0]
        return [SearchHit(id=h.id, score=h.score, metadata=h.metadata, passage=PassageOut(**vars(h.passage)))
                for h in hits]

    def get(self, id: DocId, start: Annotated[int, Field(ge=0, description="First character to return.")] = 0,
            max_chars: Annotated[int, Field(ge=1, le=READ_CHARS, description="Characters to return.")] = READ_CHARS
            ) -> DocumentText:
        """Read one document: its metadata and its text (a long text a piece at a time)."""
        document = library(lambda: self.collection.get(id))
        end = min(len(document.text), start + max_chars)
        return DocumentText(id=document.id, metadata=document.metadata, text=document.text[start:end],
                            start=min(start, end), end=end, length=len(document.text))

    def list_documents(self, filter: Filter = None, limit: Annotated[int, Field(ge=1, le=MAX_K)] = 20,
             offset: Annotated[int, Field(ge=0)] = 0) -> list[DocumentPreview]:
        """List the documents (those matching a metadata filter), in id order, a page at a time."""
        documents = library(lambda: self.collection.documents(filter=filter, limit=limit, offset=offset))
        return [DocumentPreview(id=d.id, metadata=d.metadata, preview=d.text[:PREVIEW_CHARS], length=len(d.text))
                for d in documents]

    def explain(self, query: Query, id: DocId) -> Explanation:
        """Why a document matches a query: the passage, the words each query word picked, their scores."""
        from maxsim.io.excerpt import best_excerpt, matched_terms

        e = library(lambda: self.collection.explain(query, id))
        excerpt = best_excerpt(e["text"], e)
        return Explanation(id=id, score=e["score"], passage=PassageOut(**vars(e["passage"])),
                           excerpt=bold(excerpt["text"], excerpt["highlights"]),
                           matched=matched_terms(query, e["text"], e),
                           picks=[Pick(query_token=a["query_token"], document_token=a["document_token"],
                                       score=a["score"]) for a in e["alignment"]])

    def add(self, documents: Annotated[list[NewDocument], Field(min_length=1)]) -> list[str]:
        """Add documents (all or none; an id already present is an error). Answers their ids."""
        ids = [d.id for d in documents]
        return library(lambda: self.collection.add([d.text for d in documents], ids=None if ids == [None] * len(ids)
                                                   else ids, metadata=[d.metadata for d in documents]))

    def upsert(self, documents: Annotated[list[Replacement], Field(min_length=1)]) -> list[str]:
        """Add documents, replacing those whose id is present (text, metadata and vectors)."""
        return library(lambda: self.collection.upsert([d.text for d in documents], ids=[d.id for d in documents],
                                                      metadata=[d.metadata for d in documents]))

    def remove(self, ids: Annotated[list[str], Field(min_length=1, description="Ids of documents to remove.")]
               ) -> int:
        """Remove documents by id (an unknown id is an error and removes nothing). Answers the number of
        documents left."""
        library(lambda: self.collection.remove(ids))
        return len(self.collection)


def library(call):
    """``call()``; a ``MaxsimError`` becomes the SDK's tool error with the same message."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return call()
    except MaxsimError as error:
        raise ToolError(str(error)) from None


def bold(text: str, highlights: list[dict]) -> str:
    """``text`` with each highlighted span wrapped in ``**``."""
    out, at = [], 0
    for span in sorted(highlights, key=lambda s: s["start"]):
        if span["start"] >= at:
            out += [text[at:span["start"]], "**", text[span["start"]:span["end"]], "**"]
            at = span["end"]
    return "".join(out + [text[at:]])
