"""``Versions``: the committed versions of a retriever folder — reading one, committing the next,
and deleting the files no kept version needs.

A read holds one version from start to end: a snapshot of ``state.sqlite3`` (``maxsim.search.store``)
and the index as that version committed it (views are cached and share loaded segments). A write
takes the folder's lock, stages the index's changes in memory, writes the new segment files and
BM25 copy under fresh names, and commits version N+1 as one SQLite transaction; a process killed at
any point leaves version N whole. The files of the ``KEEP_VERSIONS`` newest versions stay on disk
(readers of the previous version finish undisturbed); so do the page images they name
(``maxsim.search.pages``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from maxsim.errors import CorruptedError
from maxsim.index.storage import MANAGED_PREFIXES, check_sizes, writer_lock
from maxsim.search.store import StateStore

logger = logging.getLogger(__name__)

KEEP_VERSIONS = 2  # index files and BM25 copies of this many recent versions stay on disk


class Versions:
    """Versions of the folder whose index is ``kind`` (an index class) and whose store is ``store``;
    ``bm25``: its ``BM25Versions`` (None without hybrid); ``pages``: its ``PageStore`` (a folder of
    pages; None for texts)."""

    def __init__(self, folder: Path, kind, store: StateStore, bm25, pages=None, lock_timeout: float = 600.0):
        self.folder, self.kind, self.store, self.bm25, self.pages = Path(folder), kind, store, bm25, pages
        self._segments: dict = {}
        self._views: OrderedDict[int, object] = OrderedDict()
        self._lock = threading.Lock()
        if store.needs_upgrade():  # a folder written before row checksums: add them, once
            with writer_lock(self.folder, lock_timeout):
                store.upgrade()

    @contextlib.contextmanager
    def reading(self):
        """``(snapshot, index)`` of the newest committed version, held for the block."""
        for attempt in range(3):
            with self.store.read() as snap:
                try:
                    view = self.view(snap.version, snap.index_body)
                    check_sizes(view.folder, view.files)
                except (FileNotFoundError, CorruptedError):
                    if attempt == 2:  # not a race with a writer's clean-up: the files are damaged
                        raise
                    continue
                if len(view) != snap.digest.count("passages"):
                    raise CorruptedError(f"{view.folder} holds {len(view)} passages where {self.store.path} lists "
                                         f"{snap.digest.count('passages')}: the folder is damaged; run `maxsim "
                                         "check` on it, or restore it from a backup.")
                yield snap, view
                return

    def view(self, version: int, body: dict):
        """The index at ``version`` (cached; views share loaded segments)."""
        with self._lock:
            view = self._views.get(version)
        if view is None:
            view = self.kind(self.folder / "index", body, manifest=Staged(body), segment_cache=self._segments)
            with self._lock:
                self._views[version] = view
                while len(self._views) > KEEP_VERSIONS + 1:
                    self._views.popitem(last=False)
                live = {id(s) for v in self._views.values() for s in v.segments}
                for key in [k for k, s in self._segments.items() if id(s) not in live]:
                    del self._segments[key]
        return view

    @contextlib.contextmanager
    def writing(self, lock_timeout: float):
        """``(snapshot, index)`` to change; committed as version N+1 when the block ends. Waits up to
        ``lock_timeout`` seconds for the folder's lock (then ``LockedError``)."""
        with writer_lock(self.folder, lock_timeout):
            with self.store.write() as snap:
                staged = Staged(snap.index_body)
                index = self.kind(self.folder / "index", staged.body, manifest=staged, segment_cache=self._segments)
                yield snap, index
                bm25 = self.bm25.publish(*snap.all_texts()) if self.bm25 is not None else None
                snap.commit_version(staged.body, bm25, time.time())
                snap.forget_commits(below=snap.version - KEEP_VERSIONS + 1)
                if self.pages is not None:
                    self.pages.collect(snap, below=snap.version - KEEP_VERSIONS + 1)
            self._collect()

    def _collect(self) -> None:
        """Delete index files and BM25 copies that no kept version references (lock held); nothing
        while a kept version's commit is unreadable (the next read names the damage)."""
        try:
            with self.store.read() as snap:
                kept = snap.recent_commits(KEEP_VERSIONS)
        except CorruptedError as error:
            logger.warning("files of old versions are kept: %s", error)
            return
        files = {name for _, body, _ in kept for name in body["files"]}
        for entry in os.scandir(self.folder / "index"):
            if entry.name.startswith(MANAGED_PREFIXES) and entry.name not in files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        if self.bm25 is not None:
            self.bm25.collect({name for _, _, name in kept if name})

    @property
    def version(self) -> int:
        """The newest committed version."""
        with self.store.read() as snap:
            return snap.version


class Staged:
    """Where an index inside a retriever commits: in memory, until the folder's store commits it."""

    def __init__(self, body: dict):
        self.body = body

    def read(self) -> dict:
        return self.body

    def lock(self):
        return contextlib.nullcontext()

    def commit(self, body: dict) -> None:
        self.body = body
