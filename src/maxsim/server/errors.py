"""How the service answers errors: each ``maxsim.errors`` type with its own ``status``, request
validation with a 422 that never echoes the input, anything else with a logged, generic 500.

Every answer is JSON ``{"detail": ...}``. Answers go through ``SafeJSON``, which escapes a lone
surrogate instead of failing to encode it, so no stored or sent string can turn an answer into a 500.
Messages name files relative to the served folder (``state.sqlite3``, ``index/seg-…``): a client never
sees where the folder lives on the server. A busy service (``LockedError``, ``BusyError``: 503) adds
``Retry-After``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from maxsim.errors import BusyError, LockedError, MaxsimError

log = logging.getLogger("maxsim.server")


class SafeJSON(JSONResponse):
    """JSON as UTF-8; a body holding a lone surrogate is sent with ASCII escapes (``\\ud800``) instead."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


RETRY_AFTER = "1"  # seconds a client should wait before retrying a busy service


def install(app: FastAPI, folder: Path) -> None:
    """Register the handlers on ``app``, serving ``folder`` (hidden from messages)."""
    paths = {str(Path(folder).resolve()), str(Path(folder))}
    hidden = [(f"{path}/", "") for path in paths] + [(path, Path(folder).name) for path in paths]

    async def library_error(request: Request, error: MaxsimError) -> JSONResponse:
        detail = str(error)
        for path, shown in hidden:
            detail = detail.replace(path, shown)
        headers = {"Retry-After": RETRY_AFTER} if isinstance(error, (LockedError, BusyError)) else None
        return SafeJSON({"detail": detail}, status_code=error.status, headers=headers)

    app.add_exception_handler(MaxsimError, library_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 listing each problem's ``loc``, ``msg`` and ``type`` (not the offending input)."""
    detail = [{"loc": [printable(part) for part in problem.get("loc", ())], "msg": printable(problem.get("msg", "")),
               "type": problem.get("type", "")} for problem in error.errors()]
    return SafeJSON({"detail": detail}, status_code=422)


async def unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=error)
    return SafeJSON({"detail": "internal error; the server log has the details."}, status_code=500)


def printable(part):
    """``part`` with lone surrogates replaced by ``\\udXXX`` text (ints pass through)."""
    if isinstance(part, str):
        return part.encode("utf-8", "backslashreplace").decode("utf-8")
    return part if isinstance(part, int) else str(part)
