"""One retriever folder for the service: reads on a pool of threads, writes on one writer thread.

Every ``Retriever`` read runs on one committed version from start to end and follows commits
made by any process, so readers need nothing from here but threads; writes run one at a time on
the writer thread (so they never hold up a reader thread) and, across processes, wait on the
folder's lock (``LockedError``, 503, when another process holds it past the wait).

Searches come first: the writer thread runs at a lower CPU priority (``writer_niceness``, Linux
thread niceness, default 10), so a write uses the CPU that searches leave. On 2 cores under 16
search clients this keeps 79 % of the search throughput while writes continue at a lower rate
(bench/RESULTS.md, Consistency); 0 gives writes an equal share.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maxsim.errors import InvalidInputError

logger = logging.getLogger(__name__)
WRITER_NICENESS = 10


class LiveRetriever:
    """``await live.read(fn)`` / ``await live.write(fn)`` run ``fn(retriever)`` on a reader / the
    writer thread and return its result. ``model``: a loaded ``MultiVectorEncoder``, or None for
    the one the folder's manifest names. ``readers``: reader threads (concurrent searches); more
    requests wait in a queue. ``writer_niceness``: added to the writer thread's niceness (0-19).
    ``documents``: the count when it was opened."""

    def __init__(self, folder: str | Path, model=None, readers: int = 4, writer_niceness: int = WRITER_NICENESS):
        from maxsim.search import Retriever

        if readers < 1:
            raise InvalidInputError(f"readers must be at least 1, got {readers}.")
        if not 0 <= writer_niceness <= 19:
            raise InvalidInputError(f"writer_niceness must be in 0..19, got {writer_niceness}.")
        self.folder = Path(folder)
        self.retriever = Retriever.open(self.folder, model=model)
        self.model = self.retriever.model
        self.documents = len(self.retriever)
        len(self.retriever.index)  # loads the committed index: damaged files fail here, naming themselves
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="maxsim-reader")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="maxsim-writer", initializer=_lower_priority,
                                          initargs=(writer_niceness,))

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


def _lower_priority(niceness: int) -> None:
    """Raise this thread's niceness by ``niceness`` (Linux: threads have their own; else a no-op)."""
    if not niceness or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError as error:
        logger.warning("could not lower the writer thread's priority: %s", error)
