"""``POST /rerank``: order a query's candidate texts by MaxSim, in the request and answer shape of
Cohere's rerank API, so its clients work unchanged.

Request ``{"query": "…", "documents": ["…" or {"text": "…"}, …], "top_n": 3, "return_documents": false,
"max_tokens_per_doc": 4096}``; answer ``{"results": [{"index": 2, "relevance_score": 12.3,
"passage": {"index", "start", "end"}}, …]}`` best first, ``index`` the position in ``documents``
(ties keep input order). A long document is scored as a collection scores it: split into passages,
the best passage gives its score and is reported (``maxsim.rerank``). ``model`` is accepted and
ignored: the service reranks with the model it serves.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from maxsim.errors import LimitExceededError
from maxsim.search.rerank import rerank
from maxsim.server.checks import check_text
from maxsim.server.schemas import Limits


class RerankText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class SpanOf(BaseModel):
    index: int = Field(description="Ordinal of the best passage in the document.")
    start: int = Field(description="Its first character in the document's text.")
    end: int


class Reranked(BaseModel):
    index: int = Field(description="Position of the document in the request's documents.")
    relevance_score: float = Field(description="MaxSim of the query and the document's best passage.")
    passage: SpanOf = Field(description="The best passage (the whole text when it fits the model).")
    document: RerankText | None = Field(None, description="With return_documents: the document's text.")


class RerankAnswer(BaseModel):
    results: list[Reranked] = Field(description="The documents best first.")


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, description="The query text.")
    documents: list[str | RerankText] = Field(min_length=1, description="Candidate texts (strings or "
                                                                         '{"text": …}), at most the max_k limit.')
    top_n: int | None = Field(None, ge=1, strict=True, description="Keep the best top_n (default: all).")
    return_documents: bool = Field(False, strict=True, description='Add {"document": {"text"}} to each result.')
    max_tokens_per_doc: int | None = Field(None, ge=1, strict=True, description="Score only each document's "
                                                                                "first tokens (default: all).")
    model: str | None = Field(None, description="Accepted and ignored: the service's own model reranks.")

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


def rerank_router(live, limits: Limits) -> APIRouter:
    """The route, reranking with the model of ``live`` (a ``LiveRetriever``) on its reader threads.
    At most ``limits.max_k`` documents (the most results a request may get), each at most
    ``limits.max_text_chars`` characters (413 otherwise)."""
    router = APIRouter()

    @router.post("/rerank", response_model=RerankAnswer, response_model_exclude_none=True)
    async def rerank_documents(request: RerankRequest) -> dict:
        """Candidate ``documents`` of ``query`` best first: ``{"results": [{"index", "relevance_score",
        "passage"}, ...]}``."""
        texts = request.texts()
        check_request(request.query, texts, limits)
        ranked = await live.read(lambda r: rerank([request.query], [texts], k=request.top_n, model=r.model,
                                                  max_tokens=request.max_tokens_per_doc)[0])
        return {"results": [result(hit, texts, request.return_documents) for hit in ranked]}

    return router


def check_request(query: str, texts: list[str], limits: Limits) -> None:
    if len(texts) > limits.max_k:
        raise LimitExceededError(f"{len(texts)} documents in one rerank request; the limit is {limits.max_k}: "
                                 "send fewer candidates.")
    check_text(query, "query", limits.max_text_chars)
    for i, text in enumerate(texts):
        check_text(text, f"document {i}", limits.max_text_chars)


def result(hit: dict, texts: list[str], return_documents: bool) -> dict:
    answer = {"index": hit["id"], "relevance_score": hit["score"], "passage": hit["passage"]}
    if return_documents:
        answer["document"] = {"text": texts[hit["id"]]}
    return answer
