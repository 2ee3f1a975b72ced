"""One retriever folder for the service: reads on a pool of threads, writes on one writer thread.

Every ``Retriever`` read runs on one committed version from start to end and follows commits
made by any process, so readers need nothing from here but threads; writes run one at a time on
the writer thread (so they never hold up a reader thread) and, across processes, wait on the
folder's lock (``LockedError``, 503, when another process holds it past the wait).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maxsim.errors import InvalidInputError


class LiveRetriever:
    """``await live.read(fn)`` / ``await live.write(fn)`` run ``fn(retriever)`` on a reader / the
    writer thread and return its result. ``model``: a loaded ``MultiVectorEncoder``, or None for
    the one the folder's manifest names. ``readers``: reader threads (concurrent searches); more
    requests wait in a queue. ``documents``: the count when it was opened."""

    def __init__(self, folder: str | Path, model=None, readers: int = 4):
        from maxsim.search import Retriever

        if readers < 1:
            raise InvalidInputError(f"readers must be at least 1, got {readers}.")
        self.folder = Path(folder)
        self.retriever = Retriever.open(self.folder, model=model)
        self.model = self.retriever.model
        self.documents = len(self.retriever)
        len(self.retriever.index)  # loads the committed index: damaged files fail here, naming themselves
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="maxsim-reader")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="maxsim-writer")

    async def read(self, fn):
        """``fn(retriever)`` on a reader thread."""
        return await asyncio.wrap_future(self._readers.submit(fn, self.retriever))

    async def write(self, fn):
        """``fn(retriever)`` on the writer thread (one change at a time in this process)."""
        return await asyncio.wrap_future(self._writer.submit(fn, self.retriever))

    def close(self) -> None:
        """Finish queued work, stop the threads, close the retriever."""
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self.retriever.close()
