"""The FastAPI application: search, documents, explain, health, stats, and the web page at ``/``.

Routes other than ``/health``, the page and the OpenAPI docs need ``Authorization: Bearer KEY``
when the app is built with an ``api_key``. Errors answer ``{"detail": message}``: 401 (key), 404
(unknown id), 409 (id already present), 413 (over a limit), 422 (invalid request).
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from maxsim.io import best_passage, matched_terms
from maxsim.server.body_limit import BodyLimit
from maxsim.server.live import LiveRetriever
from maxsim.server.schemas import AddRequest, ExplainRequest, Limits, SearchRequest

STATIC = Path(__file__).parent / "static"
bearer = HTTPBearer(auto_error=False, description="The key given to `maxsim serve --api-key`.")


def create_app(live: LiveRetriever, api_key: str | None = None, limits: Limits = Limits()) -> FastAPI:
    """The service over ``live`` (a ``LiveRetriever``); ``api_key`` None leaves every route open."""
    app = FastAPI(title="maxsim", description="Multi-vector (MaxSim) search over one retriever folder.")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    async def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials if credentials else ""
        if api_key is not None and not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'.",
                                headers={"WWW-Authenticate": "Bearer"})

    def check_texts(texts: list[str], what: str, plural: str) -> None:
        if len(texts) > limits.max_batch:
            raise HTTPException(413, f"{len(texts)} {plural} in one request; the limit is {limits.max_batch}: "
                                     "split the request.")
        for i, text in enumerate(texts):
            if len(text) > limits.max_text_chars:
                raise HTTPException(413, f"{what} {i} has {len(text)} characters; the limit is "
                                         f"{limits.max_text_chars}: split or shorten it.")

    api = APIRouter(dependencies=[Depends(authorize)])

    @api.post("/search")
    async def search(request: SearchRequest) -> dict:
        """Top ``k`` documents per query: ``{"results": [[{"id", "score", "text", "metadata"}, ...], ...]}``."""
        check_texts(request.queries, "query", "queries")
        if request.k > limits.max_k:
            raise HTTPException(422, f"k={request.k} is above the limit {limits.max_k}.")
        with library_errors():
            results = await live.read(lambda r: r.search(request.queries, k=request.k, hybrid=request.hybrid))
        return {"results": results}

    @api.post("/documents", status_code=201)
    async def add_documents(request: AddRequest) -> dict:
        """Encode and add documents (all or nothing); answers their ids."""
        documents = request.documents
        check_texts([d.text for d in documents], "document", "documents")
        given = [d.id for d in documents if d.id is not None]
        if given and len(given) != len(documents):
            raise HTTPException(422, "give every document an id, or none (ids are then generated).")
        if len(set(given)) != len(given):
            raise HTTPException(422, "the request holds the same id twice: each id once.")

        def add(retriever):
            present = set(retriever.index.ids())
            taken = [i for i in given if i in present]
            if taken:
                raise HTTPException(409, f"id {taken[0]!r} is already present: delete it first or pick a new id.")
            return retriever.add([d.text for d in documents], ids=given or None,
                                 metadata=[d.metadata for d in documents])

        with library_errors():
            ids = await live.write(add)
        return {"ids": ids, "documents": live.documents}

    @api.get("/documents/{doc_id:path}")
    async def get_document(doc_id: str) -> dict:
        """``{"id", "text", "metadata"}`` of one document."""
        with library_errors():
            return await live.read(lambda r: r.get(doc_id))

    @api.delete("/documents/{doc_id:path}")
    async def delete_document(doc_id: str) -> dict:
        """Remove one document."""
        with library_errors():
            await live.write(lambda r: r.remove([doc_id]))
        return {"deleted": doc_id, "documents": live.documents}

    @api.post("/explain")
    async def explain(request: ExplainRequest) -> dict:
        """The MaxSim alignment of a query and one document (see ``Retriever.explain``), with the
        document ``text``, its best ``passage`` and the ``matched`` query terms."""
        check_texts([request.query], "query", "queries")
        with library_errors():
            explanation, text = await live.read(lambda r: (r.explain(request.query, request.id),
                                                           r.get(request.id)["text"]))
        return {**explanation, "text": text, "passage": best_passage(text, explanation),
                "matched": matched_terms(request.query, text, explanation)}

    @api.get("/stats")
    async def stats() -> dict:
        """Documents, token vectors, bytes on disk, index kind, model, and the request limits."""
        return {**await live.read(lambda r: r.stats()), "limits": vars(limits)}

    @app.get("/health")
    async def health() -> dict:
        """Open without a key: liveness, document count, and whether the other routes need a key."""
        return {"status": "ok", "documents": live.documents, "auth": api_key is not None}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


@contextlib.contextmanager
def library_errors():
    """Map the library's exceptions to HTTP errors: KeyError -> 404, ValueError/TypeError -> 422."""
    try:
        yield
    except KeyError as error:
        raise HTTPException(404, error.args[0] if error.args else "unknown id") from None
    except (ValueError, TypeError) as error:
        raise HTTPException(422, str(error)) from None
