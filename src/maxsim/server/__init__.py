"""The HTTP service (FastAPI) over a retriever folder, with a web page at ``/``."""

import importlib

# imported on first use, so that the CLI (which reads Limits' defaults) does not load torch
_EXPORTS = {"create_app": "maxsim.server.app", "LiveRetriever": "maxsim.server.live", "Limits": "maxsim.server.schemas"}
__all__ = ["Limits", "LiveRetriever", "create_app"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'maxsim.server' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
