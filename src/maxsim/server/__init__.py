"""The HTTP service (FastAPI) over a retriever folder, with a web page at ``/``."""

from maxsim.lazy import lazy_exports

# imported on first use, so that the CLI (which reads Limits' defaults) does not load torch
_EXPORTS = {"create_app": "maxsim.server.app", "LiveRetriever": "maxsim.server.live", "Limits": "maxsim.server.limits"}
__all__ = ["Limits", "LiveRetriever", "create_app"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
