"""The HTTP service (FastAPI) over a retriever folder, with a web page at ``/``."""

from maxsim.server.app import create_app
from maxsim.server.live import LiveRetriever
from maxsim.server.schemas import Limits

__all__ = ["Limits", "LiveRetriever", "create_app"]
