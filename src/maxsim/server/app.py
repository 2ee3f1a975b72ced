"""The FastAPI application: search, documents, explain, health, stats, page images, the web page at
``/`` and the OpenAPI docs at ``/docs`` and ``/redoc`` (their assets served from this machine, no CDN).

Routes other than ``/health``, the page and the OpenAPI docs need ``Authorization: Bearer KEY``
when the app is built with an ``api_key``. Errors answer ``{"detail": ...}`` with the status of the
``maxsim.errors`` type raised (see ``maxsim.server.errors`` and docs/server.md). Every JSON route
declares its answer's schema (``maxsim.server.schemas``), shown at ``/docs``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from maxsim.errors import InvalidInputError, LimitExceededError, NotFoundError
from maxsim.io import shown
from maxsim.search.heatmaps import json_ready
from maxsim.search.hits import Document
from maxsim.server import errors
from maxsim.server.body_limit import BodyLimit
from maxsim.server.checks import check_id, check_json, check_text, check_texts, fit_answer
from maxsim.server.images import checked_pages
from maxsim.server.live import LiveRetriever
from maxsim.server.rerank import rerank_router
from maxsim.server.schemas import (
    Added,
    AddRequest,
    Deleted,
    DocumentPage,
    ExplainRequest,
    Explanation,
    Health,
    Limits,
    SearchAnswer,
    SearchRequest,
    Stats,
    UpsertRequest,
    Written,
)

STATIC = Path(__file__).parent / "static"
bearer = HTTPBearer(auto_error=False, description="The key given to `maxsim serve --api-key`.")


def check_api_key(api_key: str | None) -> None:
    """None (no key) or a non-empty key without whitespace; an empty key would let anyone in."""
    if api_key is not None and (not api_key or any(c.isspace() for c in api_key)):
        raise InvalidInputError("the API key is empty or holds whitespace: give a non-empty key without spaces "
                                "(or none, to leave the service open).")


def hits_shown(collection, queries: list[str], results: list[list]) -> list[list[dict | None]]:
    """``shown`` of each hit with its text (None past the answer budget, or for a document removed
    since the search)."""
    return [[_shown(collection, query, hit.id) if hit.text is not None else None for hit in hits]
            for query, hits in zip(queries, results)]


def _shown(collection, query: str, doc_id: str) -> dict | None:
    try:
        explanation = collection.explain(query, doc_id)
    except NotFoundError:
        return None
    return shown(query, explanation["text"], explanation)


def create_app(live: LiveRetriever, api_key: str | None = None, limits: Limits = Limits()):
    """The service over ``live`` (a ``LiveRetriever``); ``api_key`` None leaves every route open."""
    check_api_key(api_key)
    app = FastAPIOffline(title="maxsim", description="Multi-vector (MaxSim) search over one collection.",
                         default_response_class=errors.SafeJSON, static_url="/docs-static")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    errors.install(app, live.folder)

    async def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials else ""
        if api_key is not None and not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'.",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(dependencies=[Depends(authorize)])
    api.include_router(document_routes(live, limits))

    @api.post("/search", response_model=SearchAnswer)
    async def search(request: SearchRequest) -> SearchAnswer:
        """Top ``k`` documents per query, best first; hits past the answer budget come without text
        and metadata (``omitted`` counts them)."""
        check_texts(request.queries, "queries", "query", limits, limits.max_text_chars)
        if request.k > limits.max_k:
            raise InvalidInputError(f"k={request.k} is above the limit {limits.max_k}.")
        if request.k * len(request.queries) > limits.max_hits:
            raise LimitExceededError(f"k={request.k} x {len(request.queries)} queries asks for more than "
                                     f"{limits.max_hits} hits: lower k or send fewer queries per request.")
        check_json(request.filter, "filter", limits)
        options = {key: value for key, value in (("filter", request.filter), ("prf", request.prf),
                                                 ("alpha", request.alpha)) if value is not None}
        results = await live.search(request.queries, k=request.k, hybrid=request.hybrid, fusion=request.fusion,
                                    **options)
        results, omitted = fit_answer(results, limits.max_response_chars)
        if not request.excerpts:
            return SearchAnswer(results=results, omitted=omitted)
        return SearchAnswer(results=results, omitted=omitted,
                            excerpts=await live.read(lambda r: hits_shown(r, request.queries, results)))

    @api.post("/explain", response_model=Explanation)
    async def explain(request: ExplainRequest) -> dict:
        """The MaxSim alignment of a query and the best passage of one document, read from one
        version with the document's ``text``; ``excerpt``: the window of it to show with its
        highlights; ``matched``: the query terms."""
        check_text(request.query, "query", limits.max_text_chars)
        check_id(request.id, "id", limits)
        explanation = await live.read(lambda r: r.explain(request.query, request.id))
        answer = {**explanation, **shown(request.query, explanation["text"], explanation), "passage":
                  explanation["passage"]}
        return {**answer, "page": json_ready(explanation["page"])} if "page" in explanation else answer

    @api.get("/stats", response_model=Stats)
    async def stats() -> dict:
        """Documents, token vectors, bytes on disk, index kind, model, and the request limits."""
        return {**await live.read(lambda r: r.stats()), "limits": vars(limits)}

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        """Open without a key: liveness, document count, whether the other routes need a key, and what
        the documents are (texts or page images)."""
        return Health(status="ok", documents=await live.read(len), auth=api_key is not None,
                      modality=live.collection.modality)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    api.include_router(rerank_router(live, limits))
    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def document_routes(live: LiveRetriever, limits: Limits) -> APIRouter:
    """``/documents``: list (with a filter), add, get, upsert and delete documents."""
    router = APIRouter()

    @router.get("/documents", response_model=DocumentPage)
    async def list_documents(filter: str | None = Query(None, description='A metadata filter as JSON, e.g. '
                                                                          '{"lang": "en"} (docs/search.md).'),
                             limit: int = Query(100, ge=1, le=limits.max_list), offset: int = Query(0, ge=0)):
        """The documents matching ``filter`` (all without one), in id order, a page at a time."""
        where = parse_filter(filter, limits)
        documents = await live.read(lambda r: r.documents(filter=where, limit=limit, offset=offset))
        return DocumentPage(documents=documents, offset=offset,
                            next_offset=offset + len(documents) if len(documents) == limit else None)

    @router.post("/documents", status_code=201, response_model=Added)
    async def add_documents(request: AddRequest) -> Added:
        """Split into passages, encode and add documents (all or nothing; 409 if an id is taken);
        answers their ids once committed."""
        documents = request.documents
        pages = checked_pages(live.collection.modality, documents, limits)
        given = [d.id for d in documents if d.id is not None]
        if given and len(given) != len(documents):
            raise InvalidInputError("give every document an id, or none (ids are then generated).")
        if len(set(given)) != len(given):
            raise InvalidInputError("the request holds the same id twice: each id once.")
        for i, document in enumerate(documents):
            if document.id is not None:
                check_id(document.id, f"document {i} id", limits)
            check_json(document.metadata, f"document {i} metadata", limits)

        def add(collection):
            ids = collection.add([d.text for d in documents], ids=given or None,
                                 metadata=[d.metadata for d in documents], pages=pages)
            return Added(ids=ids, documents=len(collection))

        return await live.write(add)

    @router.put("/documents/{doc_id:path}", response_model=Written)
    async def upsert_document(doc_id: str, request: UpsertRequest) -> Written:
        """Add the document, or replace its text, metadata and vectors (one commit; a long text is
        split into passages); answers once committed."""
        check_id(doc_id, "id", limits)
        pages = checked_pages(live.collection.modality, [request], limits, lambda i: "the document")
        check_json(request.metadata, "metadata", limits)

        def upsert(collection):
            collection.upsert([request.text], ids=[doc_id], metadata=[request.metadata], pages=pages)
            return Written(id=doc_id, documents=len(collection))

        return await live.write(upsert)

    @router.get("/documents/{doc_id:path}/image", response_class=Response,
                responses={200: {"content": {"image/webp": {}}, "description": "The page image (WebP)."}})
    async def page_image(doc_id: str, request: Request) -> Response:
        """The stored image of a page (a collection of pages; 404 in a text collection). ``ETag``: its
        content hash (``If-None-Match`` answers 304)."""
        check_id(doc_id, "id", limits)
        if live.collection.modality == "text":  # a text document whose id ends in /image, or nothing
            return errors.SafeJSON((await text_document(live, doc_id + "/image")).to_dict())
        image = await live.read(lambda r: r.page_image(doc_id))
        headers = {"ETag": f'"{image.etag}"', "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(image.data, media_type=image.media_type, headers=headers)

    @router.get("/documents/{doc_id:path}", response_model=Document)
    async def get_document(doc_id: str) -> Document:
        """One document: its ``id``, ``text`` and ``metadata``."""
        check_id(doc_id, "id", limits)
        return await live.read(lambda r: r.get(doc_id))

    @router.delete("/documents/{doc_id:path}", response_model=Deleted)
    async def delete_document(doc_id: str) -> Deleted:
        """Remove one document."""
        check_id(doc_id, "id", limits)

        def remove(collection):
            collection.remove([doc_id])
            return Deleted(deleted=doc_id, documents=len(collection))

        return await live.write(remove)

    return router


async def text_document(live: LiveRetriever, doc_id: str) -> Document:
    """The document ``doc_id`` of a text collection; 404 saying it has no page images when there is none."""
    try:
        return await live.read(lambda r: r.get(doc_id))
    except NotFoundError:
        raise NotFoundError(f"{live.folder} is a text collection: its documents have no page image.") from None


def parse_filter(text: str | None, limits: Limits) -> dict | None:
    """The ``filter`` query parameter: a JSON object within the metadata limits (None when absent)."""
    if text is None:
        return None
    try:
        where = json.loads(text)
    except ValueError as error:
        raise InvalidInputError(f"filter is not valid JSON ({error}): send a JSON object such as "
                                '{"lang": "en"}.') from None
    if not isinstance(where, dict):
        raise InvalidInputError(f"filter must be a JSON object, got {type(where).__name__}.")
    check_json(where, "filter", limits)
    return where
