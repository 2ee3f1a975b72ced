"""One collection for the service: reads on a pool of threads, writes on one writer thread.

Every read of a collection (``maxsim.open``: a folder or a sharded collection) runs on one
committed version and follows commits made by any process, so readers need nothing from here but
threads; writes run one at a time on the writer thread (so they never hold up a reader thread)
and, across processes, wait on the collection's lock (``LockedError``, 503, when another process
holds it past the wait).

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
    """``await live.read(fn)`` / ``await live.write(fn)`` run ``fn(collection)`` on a reader / the
    writer thread and return its result. ``model``: a loaded ``MultiVectorEncoder``, or None for
    the one the folder names. ``readers``: reader threads (concurrent searches); more requests wait
    in a queue. ``writer_niceness``: added to the writer thread's niceness (0-19). ``ray_address``:
    keep a sharded collection's shards in Ray actors there. ``documents``: the count when opened."""

    def __init__(self, folder: str | Path, model=None, readers: int = 4, writer_niceness: int = WRITER_NICENESS,
                 ray_address: str | None = None):
        from maxsim.opener import open_collection

        if readers < 1:
            raise InvalidInputError(f"readers must be at least 1, got {readers}.")
        if not 0 <= writer_niceness <= 19:
            raise InvalidInputError(f"writer_niceness must be in 0..19, got {writer_niceness}.")
        self.folder = Path(folder)
        self.collection = open_collection(self.folder, model=model, ray_address=ray_address)
        self.documents = self.collection.stats()["documents"]  # damaged files fail here, naming themselves
        self.model = self.collection.model  # loaded now, not by the first request
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="maxsim-reader")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="maxsim-writer", initializer=_lower_priority,
                                          initargs=(writer_niceness,))

    async def read(self, fn):
        """``fn(collection)`` on a reader thread."""
        return await asyncio.wrap_future(self._readers.submit(fn, self.collection))

    async def write(self, fn):
        """``fn(collection)`` on the writer thread (one change at a time in this process)."""
        return await asyncio.wrap_future(self._writer.submit(fn, self.collection))

    def close(self) -> None:
        """Finish queued work, stop the threads, close the collection."""
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self.collection.close()


def _lower_priority(niceness: int) -> None:
    """Raise this thread's niceness by ``niceness`` (Linux: threads have their own; else a no-op)."""
    if not niceness or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError as error:
        logger.warning("could not lower the writer thread's priority: %s", error)
