"""A small JSON client (standard library only) for a running ``maxsim serve``: no torch, no model,
so a command line search through it costs milliseconds. HTTP errors come back as the
``maxsim.errors`` type of their status, with the server's message."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from maxsim.errors import (
    AlreadyExistsError,
    InvalidInputError,
    LimitExceededError,
    LockedError,
    MaxsimError,
    NotFoundError,
)

STATUS_ERRORS = {401: InvalidInputError, 404: NotFoundError, 409: AlreadyExistsError, 413: LimitExceededError,
                 422: InvalidInputError, 503: LockedError}


def call(url: str, route: str, body: dict | None = None, api_key: str | None = None, timeout: float = 60.0):
    """POST ``body`` (GET when None) to ``url + route``; the decoded JSON answer."""
    request = urllib.request.Request(url.rstrip("/") + route, method="GET" if body is None else "POST",
                                     data=None if body is None else json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              **({"Authorization": f"Bearer {api_key}"} if api_key else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise STATUS_ERRORS.get(error.code, MaxsimError)(f"{url}{route}: {error.code} {_detail(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise MaxsimError(f"no maxsim server answers at {url} ({reason}): start one with `maxsim serve INDEX` "
                          "or search without --server.") from None


def health(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers ``GET /health`` with status ok within ``timeout`` seconds."""
    try:
        return call(url, "/health", timeout=timeout).get("status") == "ok"
    except MaxsimError:
        return False


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(error.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    return detail if isinstance(detail, str) else json.dumps(detail) if detail else error.reason
