"""Tell a local file or folder from a Hugging Face hub id, so that a missing local path fails at once
(naming it) instead of after the hub client's retries."""

from __future__ import annotations

import os
from pathlib import Path

from maxsim.errors import NotFoundError

FILE_SUFFIXES = {".jsonl", ".json", ".parquet", ".csv", ".tsv", ".txt", ".arrow", ".gz"}


def looks_local(source: str | os.PathLike) -> bool:
    """True for what can only be a path: it exists, starts with ``.``, ``/`` or ``~``, has a data-file
    suffix, or has more than one ``/`` (hub ids are ``name`` or ``owner/name``)."""
    text = os.fspath(source)
    return (Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or "\\" in text
            or Path(text).suffix.lower() in FILE_SUFFIXES or text.count("/") > 1)


def check_local(source: str | os.PathLike, what: str) -> None:
    """Raise NotFoundError when ``source`` looks local (``looks_local``) but does not exist."""
    if looks_local(source) and not Path(os.fspath(source)).expanduser().exists():
        raise NotFoundError(f"{what} {os.fspath(source)!r}: no such file or folder (working directory: "
                            f"{Path.cwd()}); fix the path, or give a hub id as 'owner/name'.")
