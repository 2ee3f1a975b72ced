"""LlamaIndex adapters (``pip install "maxsim[llama-index]"``, llama-index-core).

- ``MaxsimRetriever(retriever, k=10, filter=None, hybrid=False, content="text")``: a
  ``BaseRetriever`` over a collection (``maxsim.open``); ``retrieve(query)`` returns ``NodeWithScore``s.
- ``MaxsimReranker(model=encoder, top_n=None)``: a ``BaseNodePostprocessor`` that orders the nodes
  another retriever found by MaxSim (``maxsim.rerank``).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import Field

from maxsim.errors import InvalidInputError
from maxsim.integrations.hits import check_content, collection_of, content_of, passage_span, search_one
from maxsim.search.rerank import rerank


class MaxsimRetriever(BaseRetriever):
    """Top ``k`` documents of a collection (``maxsim.open``: a folder or a sharded one) as ``NodeWithScore``s.

    Each node: ``id_`` the document id, ``text`` the whole text (``content="text"``) or the
    best-scoring passage (``content="passage"``, with ``start_char_idx``/``end_char_idx`` its span
    in the document), ``metadata`` the stored metadata; ``score`` MaxSim (or the fused score when
    ``hybrid``). ``filter``: a metadata filter (``maxsim.search.filters``). Other keywords go to
    LlamaIndex's ``BaseRetriever`` (``callback_manager``, ``verbose``)."""

    def __init__(self, retriever, k: int = 10, filter: dict | None = None, hybrid: bool = False,
                 content: str = "text", **kwargs):
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InvalidInputError(f"k must be a positive int, got {k!r}.")
        self.retriever, self.k, self.filter, self.hybrid = collection_of(retriever), k, filter, hybrid
        self.content = check_content(content)
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = search_one(self.retriever, query_bundle.query_str, self.k, self.filter, self.hybrid)
        return [NodeWithScore(node=self._node(hit), score=hit.score) for hit in hits]

    def _node(self, hit) -> TextNode:
        span = passage_span(hit) if self.content == "passage" else {"start": None, "end": None}
        return TextNode(id_=hit.id, text=content_of(hit, self.content), metadata=dict(hit.metadata or {}),
                        start_char_idx=span["start"], end_char_idx=span["end"])


class MaxsimReranker(BaseNodePostprocessor):
    """Orders nodes by the MaxSim of the query with their content (as LlamaIndex's rerankers read
    it: ``get_content(MetadataMode.EMBED)``) under ``model`` (a ``MultiVectorEncoder``), best first,
    keeping ``top_n`` (default all); ``score`` becomes the MaxSim."""

    model: Any = Field(description="A maxsim MultiVectorEncoder.")
    top_n: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)

    @classmethod
    def class_name(cls) -> str:
        return "MaxsimReranker"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if query_bundle is None:
            raise InvalidInputError("MaxsimReranker needs the query: pass query_str= (or a QueryBundle).")
        if not nodes:
            return []
        texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        ranked = rerank([query_bundle.query_str], [texts], k=self.top_n, model=self.model,
                        batch_size=self.batch_size)[0]
        return [NodeWithScore(node=nodes[hit["id"]].node, score=hit["score"]) for hit in ranked]
