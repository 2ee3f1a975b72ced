"""Readers-writer access to one retriever folder for the service.

Reads run on a small pool of reader threads, writes on one writer thread; each thread keeps its
own ``Retriever`` (they share the loaded model; SQLite connections stay in the thread that opened
them). A write commits on the writer's copy and bumps a generation counter; each reader reopens
its copy at its next request after that. So reads never wait for a write: until the write has
committed they are answered from the last committed state, after it from the new one.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class LiveRetriever:
    """``await live.read(fn)`` / ``await live.write(fn)`` run ``fn(retriever)`` on a reader / the
    writer thread and return its result. ``model``: a loaded ``MultiVectorEncoder``, or None for
    the one the folder's manifest names (loaded once). ``readers``: reader threads (concurrent
    searches); more requests wait in a queue."""

    def __init__(self, folder: str | Path, model=None, readers: int = 4):
        if readers < 1:
            raise ValueError(f"readers must be at least 1, got {readers}.")
        self.folder = Path(folder)
        self.model = model
        self._generation = 0
        self._local = threading.local()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="maxsim-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="maxsim-reader")
        self.documents = self._writer.submit(lambda: len(self._retriever())).result()  # opens, loads the model

    def _retriever(self):
        """This thread's ``Retriever``, reopened if a write committed since it was opened."""
        from maxsim.search import Retriever

        local = self._local
        if getattr(local, "generation", None) != self._generation:
            if getattr(local, "retriever", None) is not None:
                local.retriever.close()
            local.retriever = Retriever.open(self.folder, model=self.model)
            local.generation = self._generation
            self.model = local.retriever.model
        return local.retriever

    async def read(self, fn):
        """``fn(retriever)`` on a reader thread, against the last committed state."""
        return await asyncio.wrap_future(self._readers.submit(lambda: fn(self._retriever())))

    async def write(self, fn):
        """``fn(retriever)`` on the writer thread (one change at a time), then published to readers.
        If ``fn`` raises, readers keep the state they had and the writer reopens its copy."""
        def change():
            retriever = self._retriever()
            try:
                result = fn(retriever)
            except BaseException:
                self._local.generation = None  # reopen from disk before the next change
                raise
            self.documents = len(retriever)
            self._generation += 1
            self._local.generation = self._generation  # the writer's copy is the new state
            return result

        return await asyncio.wrap_future(self._writer.submit(change))

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
