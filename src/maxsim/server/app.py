"""The FastAPI application: search, documents, explain, health, stats, the web page at ``/`` and the
OpenAPI docs at ``/docs`` and ``/redoc`` (their assets served from this machine, no CDN).

Routes other than ``/health``, the page and the OpenAPI docs need ``Authorization: Bearer KEY``
when the app is built with an ``api_key``. Errors answer ``{"detail": ...}`` with the status of the
``maxsim.errors`` type raised (see ``maxsim.server.errors`` and docs/server.md).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from maxsim.errors import InvalidInputError, LimitExceededError
from maxsim.io import best_passage, matched_terms
from maxsim.server import errors
from maxsim.server.body_limit import BodyLimit
from maxsim.server.checks import check_id, check_json, check_text, check_texts, fit_answer
from maxsim.server.live import LiveRetriever
from maxsim.server.rerank import rerank_router
from maxsim.server.schemas import AddRequest, ExplainRequest, Limits, SearchRequest, UpsertRequest

STATIC = Path(__file__).parent / "static"
bearer = HTTPBearer(auto_error=False, description="The key given to `maxsim serve --api-key`.")


def check_api_key(api_key: str | None) -> None:
    """None (no key) or a non-empty key without whitespace; an empty key would let anyone in."""
    if api_key is not None and (not api_key or any(c.isspace() for c in api_key)):
        raise InvalidInputError("the API key is empty or holds whitespace: give a non-empty key without spaces "
                                "(or none, to leave the service open).")


def create_app(live: LiveRetriever, api_key: str | None = None, limits: Limits = Limits()):
    """The service over ``live`` (a ``LiveRetriever``); ``api_key`` None leaves every route open."""
    check_api_key(api_key)
    app = FastAPIOffline(title="maxsim", description="Multi-vector (MaxSim) search over one retriever folder.",
                         default_response_class=errors.SafeJSON, static_url="/docs-static")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    errors.install(app)

    async def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials else ""
        if api_key is not None and not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'.",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(dependencies=[Depends(authorize)])

    @api.post("/search")
    async def search(request: SearchRequest) -> dict:
        """Top ``k`` documents per query: ``{"results": [[{"id", "score", "text", "metadata", "passage"},
        ...], ...], "omitted": n}``; ``n`` hits past the answer budget come without text and metadata."""
        check_texts(request.queries, "queries", "query", limits)
        if request.k > limits.max_k:
            raise InvalidInputError(f"k={request.k} is above the limit {limits.max_k}.")
        if request.k * len(request.queries) > limits.max_hits:
            raise LimitExceededError(f"k={request.k} x {len(request.queries)} queries asks for more than "
                                     f"{limits.max_hits} hits: lower k or send fewer queries per request.")
        check_json(request.filter, "filter", limits)
        options = {key: value for key, value in (("filter", request.filter), ("prf", request.prf)) if value is not None}
        results = await live.read(lambda r: r.search(request.queries, k=request.k, hybrid=request.hybrid, **options))
        return {"results": results, "omitted": fit_answer(results, limits.max_response_chars)}

    @api.post("/documents", status_code=201)
    async def add_documents(request: AddRequest) -> dict:
        """Encode and add documents (all or nothing; 409 if an id is taken); answers their ids."""
        documents = request.documents
        check_texts([d.text for d in documents], "documents", "document", limits)
        given = [d.id for d in documents if d.id is not None]
        if given and len(given) != len(documents):
            raise InvalidInputError("give every document an id, or none (ids are then generated).")
        if len(set(given)) != len(given):
            raise InvalidInputError("the request holds the same id twice: each id once.")
        for i, document in enumerate(documents):
            if document.id is not None:
                check_id(document.id, f"document {i} id", limits)
            check_json(document.metadata, f"document {i} metadata", limits)

        def add(retriever):
            ids = retriever.add([d.text for d in documents], ids=given or None,
                                metadata=[d.metadata for d in documents])
            return {"ids": ids, "documents": len(retriever)}

        return await live.write(add)

    @api.put("/documents/{doc_id:path}")
    async def upsert_document(doc_id: str, request: UpsertRequest) -> dict:
        """Add the document, or replace its text, metadata and vectors (one commit)."""
        check_id(doc_id, "id", limits)
        check_text(request.text, "text", limits.max_text_chars)
        check_json(request.metadata, "metadata", limits)

        def upsert(retriever):
            retriever.upsert([request.text], ids=[doc_id], metadata=[request.metadata])
            return {"id": doc_id, "documents": len(retriever)}

        return await live.write(upsert)

    @api.get("/documents/{doc_id:path}")
    async def get_document(doc_id: str) -> dict:
        """``{"id", "text", "metadata"}`` of one document."""
        check_id(doc_id, "id", limits)
        return await live.read(lambda r: r.get(doc_id))

    @api.delete("/documents/{doc_id:path}")
    async def delete_document(doc_id: str) -> dict:
        """Remove one document."""
        check_id(doc_id, "id", limits)

        def remove(retriever):
            retriever.remove([doc_id])
            return {"deleted": doc_id, "documents": len(retriever)}

        return await live.write(remove)

    @api.post("/explain")
    async def explain(request: ExplainRequest) -> dict:
        """The MaxSim alignment of a query and the best passage of one document (see
        ``Retriever.explain``; ``passage_span``: that passage's ``index``, ``start``, ``end``), with the
        document ``text``, the window of it to show with its highlights (``passage``) and the
        ``matched`` query terms."""
        check_text(request.query, "query", limits.max_text_chars)
        check_id(request.id, "id", limits)
        explanation, text = await live.read(lambda r: (r.explain(request.query, request.id),
                                                       r.get(request.id)["text"]))
        span = {key: value for key, value in explanation.pop("passage", {}).items() if key != "text"}
        return {**explanation, "text": text, "passage_span": span, "passage": best_passage(text, explanation),
                "matched": matched_terms(request.query, text, explanation)}

    @api.get("/stats")
    async def stats() -> dict:
        """Documents, token vectors, bytes on disk, index kind, model, and the request limits."""
        return {**await live.read(lambda r: r.stats()), "limits": vars(limits)}

    @app.get("/health")
    async def health() -> dict:
        """Open without a key: liveness, document count, and whether the other routes need a key."""
        return {"status": "ok", "documents": await live.read(len), "auth": api_key is not None}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    api.include_router(rerank_router(live, limits))
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
