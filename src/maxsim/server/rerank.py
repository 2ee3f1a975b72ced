"""``POST /rerank``: order a query's candidate texts by MaxSim, in the shape rerank services use.

Request ``{"query": "…", "documents": ["…", …], "top_n": 3, "return_documents": false}``; answer
``{"results": [{"index": 2, "relevance_score": 12.3}, …]}`` best first, ``index`` the position in
``documents`` (ties keep input order). ``model`` is accepted so clients of other rerank APIs work
unchanged, and ignored: the service reranks with the model it serves.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from maxsim.errors import LimitExceededError
from maxsim.scoring import rerank
from maxsim.server.checks import check_text
from maxsim.server.schemas import Limits


class RerankedDocument(BaseModel):
    text: str


class Reranked(BaseModel):
    index: int = Field(description="Position of the document in the request's documents.")
    relevance_score: float = Field(description="MaxSim of the query and the document.")
    document: RerankedDocument | None = Field(None, description="With return_documents: the document's text.")


class RerankAnswer(BaseModel):
    results: list[Reranked] = Field(description="The documents best first.")


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, description="The query text.")
    documents: list[str] = Field(min_length=1, description="Candidate texts, at most the service's max_k.")
    top_n: int | None = Field(None, ge=1, strict=True, description="Keep the best top_n (default: all).")
    return_documents: bool = Field(False, strict=True, description='Add {"document": {"text"}} to each result.')
    model: str | None = Field(None, description="Accepted and ignored: the service's own model reranks.")


def rerank_router(live, limits: Limits) -> APIRouter:
    """The route, reranking with the model of ``live`` (a ``LiveRetriever``) on its reader threads.
    At most ``limits.max_k`` documents (the most results a request may get), each at most
    ``limits.max_text_chars`` characters (413 otherwise)."""
    router = APIRouter()

    @router.post("/rerank", response_model=RerankAnswer, response_model_exclude_none=True)
    async def rerank_documents(request: RerankRequest) -> dict:
        """Candidate ``documents`` of ``query`` best first: ``{"results": [{"index", "relevance_score"}, ...]}``."""
        check_request(request, limits)
        ranked = await live.read(lambda r: rerank([request.query], [request.documents], k=request.top_n,
                                                  model=r.model)[0])
        return {"results": [result(hit, request) for hit in ranked]}

    return router


def check_request(request: RerankRequest, limits: Limits) -> None:
    if len(request.documents) > limits.max_k:
        raise LimitExceededError(f"{len(request.documents)} documents in one rerank request; the limit is "
                                 f"{limits.max_k}: send fewer candidates.")
    check_text(request.query, "query", limits.max_text_chars)
    for i, text in enumerate(request.documents):
        check_text(text, f"document {i}", limits.max_text_chars)


def result(hit: dict, request: RerankRequest) -> dict:
    answer = {"index": hit["id"], "relevance_score": hit["score"]}
    if request.return_documents:
        answer["document"] = {"text": request.documents[hit["id"]]}
    return answer
