"""ASGI middleware answering 413 with a JSON body when a request body is over a byte limit."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers


class BodyLimit:
    """Rejects a declared ``Content-Length`` over ``max_bytes`` before reading, and a streamed
    body as soon as it passes ``max_bytes`` (an HTTPException the app turns into JSON)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def message(self) -> str:
        return (f"request body over {self.max_bytes} bytes: send fewer or shorter documents per request (the "
                "limit: `maxsim serve --max-body-bytes`).")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": self.message()}, status_code=413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message())
            return message

        await self.app(scope, counted, send)
