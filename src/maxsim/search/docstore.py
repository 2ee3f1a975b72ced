"""Texts and metadata by id, in one SQLite file (stdlib ``sqlite3``, no pickle).

The index is the source of truth for which ids exist. Rows that are being added or removed are
flagged ``pending`` until the index has committed; ``reconcile`` settles them against the index
after a crash (pending row whose id the index holds -> kept, otherwise -> deleted).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    metadata TEXT,
    n_tokens INTEGER NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0
)
"""
# SQLite caps the number of bound parameters per statement; ids are looked up in slices of this size.
ID_SLICE = 900


class DocumentStore:
    """``documents.sqlite3`` in a retriever folder: id -> (text, metadata JSON, number of token vectors)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # one connection shared by the threads of a server, one statement group at a time
        self._db = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False)
        self._lock = threading.RLock()
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes (each one SQLite transaction) -------------------------------------------------
    def put_pending(self, ids: Sequence[str], texts: Sequence[str], metadata: Sequence[dict | None],
                    n_tokens: Sequence[int]) -> None:
        """Insert rows flagged pending (replacing leftovers of a crashed add with the same id)."""
        rows = [(i, t, None if m is None else json.dumps(m), int(n), 1)
                for i, t, m, n in zip(ids, texts, metadata, n_tokens)]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)", rows)

    def set_pending(self, ids: Sequence[str], pending: bool) -> None:
        with self._lock, self._db:
            for part in _slices(ids):
                self._db.execute(f"UPDATE documents SET pending = ? WHERE id IN ({_marks(part)})",
                                 [int(pending), *part])

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock, self._db:
            for part in _slices(ids):
                self._db.execute(f"DELETE FROM documents WHERE id IN ({_marks(part)})", list(part))

    def reconcile(self, index_contains) -> None:
        """Settle pending rows left by an interrupted add/remove: keep those whose id
        ``index_contains(id)`` is true, delete the others."""
        with self._lock:
            pending = [row[0] for row in self._db.execute("SELECT id FROM documents WHERE pending = 1")]
        if not pending:
            return
        kept = [i for i in pending if index_contains(i)]
        kept_set = set(kept)
        self.delete([i for i in pending if i not in kept_set])
        self.set_pending(kept, False)

    # -- reads ----------------------------------------------------------------------------------
    def get_many(self, ids: Sequence[str]) -> dict[str, dict]:
        """id -> {"id", "text", "metadata", "n_tokens"} for the ids present (missing ids are left out)."""
        out = {}
        for part in _slices(ids):
            query = f"SELECT id, text, metadata, n_tokens FROM documents WHERE id IN ({_marks(part)})"
            with self._lock:
                rows = self._db.execute(query, list(part)).fetchall()
            for doc_id, text, meta, n in rows:
                out[doc_id] = {"id": doc_id, "text": text, "metadata": None if meta is None else json.loads(meta),
                               "n_tokens": n}
        return out

    def texts(self, ids: Sequence[str]) -> list[str]:
        """Texts of ``ids`` in that order (KeyError naming the first id the store lacks)."""
        found = self.get_many(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"the document store {self.path} lacks text for id {missing[0]!r} "
                           f"({len(missing)} ids in all) that the index holds: the folder is damaged.")
        return [found[i]["text"] for i in ids]

    def total_tokens(self) -> int:
        """Token vectors of the committed (not pending) documents."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM documents WHERE pending = 0").fetchone()
        return int(row[0])


def _slices(ids: Sequence[str]):
    ids = list(ids)
    for start in range(0, len(ids), ID_SLICE):
        yield ids[start: start + ID_SLICE]


def _marks(part: Sequence[str]) -> str:
    return ",".join("?" * len(part))
