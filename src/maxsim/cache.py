"""The folder where maxsim keeps what it computes once per machine: backend exports and frozen
models (``maxsim.models``), the scan dtype's timing (``maxsim.index.packed``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, ``$MAXSIM_CACHE``, ``$XDG_CACHE_HOME/maxsim`` or ``~/.cache/maxsim``."""
    root = cache_dir or os.environ.get("MAXSIM_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "maxsim"
    return Path(root).expanduser()
