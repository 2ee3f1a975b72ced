"""LangChain adapters (``pip install "maxsim[langchain]"``, langchain-core).

- ``MaxsimRetriever(retriever=r, k=10, filter=None, hybrid=False, content="text")``: a
  ``BaseRetriever`` over a collection (``maxsim.open``); ``invoke(query)`` returns ``Document``s.
- ``MaxsimReranker(model=encoder, top_n=None)``: a ``BaseDocumentCompressor`` that orders the
  documents another retriever found by MaxSim (``maxsim.rerank``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, field_validator

from maxsim.integrations.hits import check_content, collection_of, content_of, passage_span, search_one
from maxsim.search.rerank import rerank


class MaxsimRetriever(BaseRetriever):
    """Top ``k`` documents of a collection (``maxsim.open``: a folder or a sharded one) as LangChain ``Document``s.

    ``page_content``: the whole text (``content="text"``) or the best-scoring passage
    (``content="passage"``). ``metadata``: the stored metadata plus ``id``, ``score`` (MaxSim, or
    the fused score when ``hybrid``) and ``passage`` ``{"index", "start", "end"}`` (these three keys
    win over stored ones of the same name). ``Document.id`` is the document id. ``filter``: a
    metadata filter (``maxsim.search.filters``)."""

    retriever: Any = Field(description="A collection (maxsim.open), or the path of its folder.")
    k: int = Field(10, gt=0)
    filter: dict | None = None
    hybrid: bool = False
    content: str = "text"

    @field_validator("retriever")
    @classmethod
    def _collection(cls, value):
        return collection_of(value)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return check_content(value)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = search_one(self.retriever, query, self.k, self.filter, self.hybrid)
        return [Document(page_content=content_of(hit, self.content), id=hit.id,
                         metadata={**(hit.metadata or {}), "id": hit.id, "score": hit.score,
                                   "passage": passage_span(hit)}) for hit in hits]


class MaxsimReranker(BaseDocumentCompressor):
    """Orders documents by MaxSim with ``model`` (a ``MultiVectorEncoder``), best first, keeping
    ``top_n`` (default all); each result is a copy with ``metadata["relevance_score"]`` set."""

    model: Any
    top_n: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        documents = list(documents)
        if not documents:
            return []
        ranked = rerank([query], [[d.page_content for d in documents]], k=self.top_n, model=self.model,
                        batch_size=self.batch_size)[0]
        return [documents[hit["id"]].model_copy(
            update={"metadata": {**documents[hit["id"]].metadata, "relevance_score": hit["score"]}})
            for hit in ranked]
