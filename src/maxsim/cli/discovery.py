"""The discovery file of a running ``maxsim serve``: ``INDEX/.maxsim-serve.json`` =
``{"url", "pid", "auth"}``, written when the server starts and removed when it stops, so that
``maxsim search INDEX QUERY`` can send the query there instead of loading the model itself.

A file left by a server that died is ignored: its process must be alive and answer ``/health``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path

FILE_NAME = ".maxsim-serve.json"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def server_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server listening on ``host:port``."""
    host = WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def announced(folder: str | os.PathLike, url: str, auth: bool):
    """Write the discovery file for the duration of the block (skipped where the folder is read-only).
    SIGTERM ends the block like SIGINT does (uvicorn re-raises it after its graceful shutdown, and
    its default action would skip the removal)."""
    path = Path(folder) / FILE_NAME
    record = {"url": url, "pid": os.getpid(), "auth": auth}
    try:
        partial = path.with_name(f"{FILE_NAME}.{os.getpid()}.partial")
        partial.write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        path = None
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if path is not None and _read(path) == record:  # another server may have taken over the folder
            path.unlink(missing_ok=True)


def _exit(signum, frame):
    raise SystemExit(128 + signum)


def discover(folder: str | os.PathLike, timeout: float = 10.0) -> dict | None:
    """``{"url", "pid", "auth"}`` of a live server of ``folder``, or None. The process named must be
    alive and answer ``/health`` within ``timeout`` seconds (a busy server on a loaded machine
    took 3 s; the wait only happens when the server's process is alive)."""
    from maxsim.cli.remote import health

    record = _read(Path(folder) / FILE_NAME)
    if not record or not _alive(record.get("pid")):
        return None
    return record if health(record.get("url", ""), timeout) else None


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
