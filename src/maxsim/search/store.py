"""``state.sqlite3``: the one owner of a retriever folder's ids and versions.

Tables: ``documents`` (id, text, metadata JSON, token vectors, passages), ``passages`` (key -> the
document and its character span; the index stores vectors under ``str(key)``), ``fields`` (indexed
metadata values for filters, see ``maxsim.search.filters``) and ``commits`` (version -> the index's
committed state and the BM25 copy of that version).

A write is one SQLite transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, WAL, ``synchronous=FULL``):
the new ``commits`` row is the commit point of version N+1 for the index, the texts and BM25 at once.
A read runs inside one read transaction, so it sees one version from start to end: SQLite's WAL
snapshot keeps rows that a newer version deleted readable until the reader ends (nothing is purged
while a reader needs it). Each thread has its own connection.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from maxsim.errors import CorruptedError, NotFoundError
from maxsim.search.filters import FIELDS_INSERT, FIELDS_SCHEMA, compile_filter, field_rows

FILE = "state.sqlite3"
SCHEMA = """
CREATE TABLE documents (id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT, n_tokens INTEGER NOT NULL,
                        n_passages INTEGER NOT NULL);
CREATE TABLE passages (key INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, ord INTEGER NOT NULL,
                       start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX passages_doc ON passages(doc);
CREATE TABLE commits (version INTEGER PRIMARY KEY, index_body TEXT NOT NULL, bm25 TEXT, created REAL NOT NULL);
"""
ID_SLICE = 900  # SQLite caps bound parameters per statement


class StateStore:
    """Connections to one ``state.sqlite3``; ``read()`` / ``write()`` give a ``Snapshot``."""

    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise CorruptedError(f"{self.path} is missing: the folder's documents are gone. Restore it from a "
                                 "backup or rebuild the folder with `maxsim index`.")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._mode = "rwc" if create else "rw"  # a missing file is never silently recreated
        if create:
            with self.damage_named():
                self._connection().executescript(SCHEMA + FIELDS_SCHEMA)
            self._mode = "rw"

    def _connection(self) -> sqlite3.Connection:
        """This thread's reading connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn, self._local.snapshot = conn, None
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self.damage_named():
            conn = sqlite3.connect(f"file:{self.path}?mode={self._mode}", uri=True, timeout=60.0,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        with self._guard:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def damage_named(self):
        """SQLite errors of a damaged or missing file -> CorruptedError naming it."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            damaged = type(exc) is sqlite3.DatabaseError or any(
                text in str(exc) for text in ("unable to open", "no such table", "malformed", "not a database"))
            if not damaged:
                raise
            raise CorruptedError(f"{self.path}: the document store is damaged ({exc}); restore it from a "
                                 "backup or rebuild the folder with `maxsim index`.") from None

    @contextlib.contextmanager
    def read(self):
        """One consistent read of the newest committed version (re-entrant within a thread)."""
        conn = self._connection()
        if self._local.snapshot is not None:
            yield self._local.snapshot
            return
        with self.damage_named():
            conn.execute("BEGIN")
            try:
                self._local.snapshot = Snapshot(conn, self.path)
                yield self._local.snapshot
            finally:
                self._local.snapshot = None
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self):
        """One write transaction on the writer's own connection (the caller holds the folder's
        lock); committed when the block ends, rolled back if it raises."""
        if self._writer is None:
            self._writer = self._connect()
        conn = self._writer
        with self.damage_named():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Snapshot(conn, self.path)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def initialize(self, index_body: dict, bm25: str | None, created: float) -> None:
        """Commit version 0 of a new folder (called once, by create)."""
        with self.damage_named():
            self._connection().execute("INSERT INTO commits VALUES (0, ?, ?, ?)",
                                       (json.dumps(index_body), bm25, created))

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local, self._writer = threading.local(), None


class Snapshot:
    """Queries against one version (inside a read or write transaction)."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn, self.path = conn, path
        row = conn.execute("SELECT version, index_body, bm25 FROM commits ORDER BY version DESC LIMIT 1").fetchone()
        if row is None:
            raise CorruptedError(f"{path} holds no committed version (an interrupted create?): delete the "
                                 "folder and create it again.")
        self.version, self._body, self.bm25 = int(row[0]), row[1], row[2]

    @property
    def index_body(self) -> dict:
        return json.loads(self._body)

    # -- documents -----------------------------------------------------------------------------
    def documents(self, ids: Sequence[str], columns: str = "id, text, metadata") -> dict[str, tuple]:
        """id -> row of ``columns`` for the ids present."""
        out = {}
        for part in _slices(ids):
            rows = self.conn.execute(f"SELECT {columns} FROM documents WHERE id IN ({_marks(part)})", part)
            out.update((row[0], row) for row in rows)
        return out

    def present(self, ids: Sequence[str]) -> list[str]:
        return list(self.documents(ids, "id"))

    def require(self, ids: Sequence[str]) -> dict[str, tuple]:
        """Rows of ``ids`` (NotFoundError naming the first unknown id)."""
        found = self.documents(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"id {missing[0]!r} is not in {self.path.parent} ({len(missing)} unknown "
                                "ids); nothing was changed.")
        return found

    def document(self, doc_id: str) -> tuple[str, dict | None]:
        """``(text, metadata)`` of ``doc_id`` (NotFoundError naming it if unknown)."""
        row = self.require([doc_id])[doc_id]
        return row[1], _metadata(row[2])

    def hit_rows(self, ids: Sequence[str]) -> dict[str, dict]:
        """id -> {"text", "metadata"} for ids the index returned (CorruptedError if one is missing)."""
        found = self.documents(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise CorruptedError(f"{self.path} lacks document {missing[0]!r} that its index holds: the store is "
                                 "damaged; restore it from a backup or rebuild the folder with `maxsim index`.")
        return {i: {"text": row[1], "metadata": _metadata(row[2])} for i, row in found.items()}

    def all_texts(self) -> tuple[list[str], list[str]]:
        rows = self.conn.execute("SELECT id, text FROM documents ORDER BY rowid").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def counts(self) -> dict:
        docs, tokens, passages, split = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(n_tokens), 0), COALESCE(SUM(n_passages), 0), "
            "COALESCE(SUM(n_passages > 1), 0) FROM documents").fetchone()
        return {"documents": int(docs), "tokens": int(tokens), "passages": int(passages), "split_documents": int(split)}

    # -- passages ------------------------------------------------------------------------------
    def passages(self, keys: Iterable[int]) -> dict[int, tuple[str, int, int, int]]:
        """key -> (document id, ordinal, start, end) (CorruptedError naming a key the store lacks)."""
        keys = list(keys)
        out = {}
        for part in _slices(keys):
            rows = self.conn.execute(f"SELECT key, doc, ord, start, end FROM passages WHERE key IN ({_marks(part)})",
                                     part)
            out.update((row[0], row[1:]) for row in rows)
        if len(out) != len(set(keys)):
            missing = next(k for k in keys if k not in out)
            raise CorruptedError(f"{self.path} lacks passage {missing} that its index holds: the store is damaged; "
                                 "rebuild the folder with `maxsim index`.")
        return out

    def passage_keys(self, ids: Sequence[str]) -> list[int]:
        keys = []
        for part in _slices(ids):
            keys += [r[0] for r in self.conn.execute(f"SELECT key FROM passages WHERE doc IN ({_marks(part)})", part)]
        return keys

    def doc_passages(self, doc_id: str) -> list[tuple[int, int, int, int]]:
        """(key, ordinal, start, end) of one document's passages, in text order."""
        return self.conn.execute("SELECT key, ord, start, end FROM passages WHERE doc = ? ORDER BY ord",
                                 (doc_id,)).fetchall()

    def listing(self, filter: dict | None, limit: int, offset: int) -> list[tuple[str, str, dict | None]]:
        """``(id, text, metadata)`` of the documents matching ``filter`` (all when None), in id order,
        ``limit`` of them from ``offset``."""
        where, params = compile_filter(filter) if filter is not None else ("1", [])
        rows = self.conn.execute(f"SELECT d.id, d.text, d.metadata FROM documents d WHERE ({where}) "
                                 "ORDER BY d.id LIMIT ? OFFSET ?", [*params, limit, offset])
        return [(doc_id, text, _metadata(meta)) for doc_id, text, meta in rows]

    def filter_ids(self, filter: dict, ids: Sequence[str] | None = None) -> list[str]:
        """Ids of the documents matching ``filter`` (among ``ids`` when given), in id order."""
        where, params = compile_filter(filter)
        sql = f"SELECT d.id FROM documents d WHERE ({where})"
        if ids is None:
            return [r[0] for r in self.conn.execute(sql + " ORDER BY d.id", params)]
        found = []
        for part in _slices(ids):
            found += [r[0] for r in self.conn.execute(f"{sql} AND d.id IN ({_marks(part)})", [*params, *part])]
        return sorted(found)

    def filter_keys(self, filter: dict, ids: Sequence[str] | None = None) -> list[int]:
        """Passage keys of the documents matching ``filter`` (and among ``ids`` when given), by SQL."""
        where, params = compile_filter(filter)
        sql = f"SELECT p.key FROM passages p JOIN documents d ON d.id = p.doc WHERE ({where})"
        if ids is None:
            return [r[0] for r in self.conn.execute(sql, params)]
        keys = []
        for part in _slices(ids):
            keys += [r[0] for r in self.conn.execute(f"{sql} AND d.id IN ({_marks(part)})", [*params, *part])]
        return keys

    # -- writes (inside ``StateStore.write``) ----------------------------------------------------
    def insert(self, doc_id: str, text: str, metadata: dict | None, spans: list[tuple[int, int]],
               n_tokens: int) -> list[int]:
        """Store a document and its passages; returns the passage keys (for the index)."""
        meta = None if metadata is None else json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        self.conn.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?)", (doc_id, text, meta, n_tokens, len(spans)))
        self.conn.executemany(FIELDS_INSERT, [(doc_id, *row) for row in field_rows(metadata)])
        cursor = self.conn.cursor()
        keys = []
        for j, (start, end) in enumerate(spans):
            cursor.execute("INSERT INTO passages (doc, ord, start, end) VALUES (?, ?, ?, ?)", (doc_id, j, start, end))
            keys.append(cursor.lastrowid)
        return keys

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete documents, their passages and fields; returns the passage keys they had."""
        keys = self.passage_keys(ids)
        for part in _slices(ids):
            for table, column in (("passages", "doc"), ("fields", "doc"), ("documents", "id")):
                self.conn.execute(f"DELETE FROM {table} WHERE {column} IN ({_marks(part)})", part)
        return keys

    def commit_version(self, index_body: dict, bm25: str | None, created: float) -> int:
        self.version += 1
        self.conn.execute("INSERT INTO commits VALUES (?, ?, ?, ?)",
                          (self.version, json.dumps(index_body), bm25, created))
        return self.version

    def recent_commits(self, n: int) -> list[tuple[int, dict, str | None]]:
        rows = self.conn.execute("SELECT version, index_body, bm25 FROM commits ORDER BY version DESC LIMIT ?", (n,))
        return [(int(v), json.loads(body), bm25) for v, body, bm25 in rows]

    def forget_commits(self, below: int) -> None:
        self.conn.execute("DELETE FROM commits WHERE version < ?", (below,))


def _metadata(raw: str | None):
    return None if raw is None else json.loads(raw)


def _slices(ids: Sequence) -> Iterable[list]:
    ids = list(ids)
    for start in range(0, len(ids), ID_SLICE):
        yield ids[start: start + ID_SLICE]


def _marks(part: Sequence) -> str:
    return ",".join("?" * len(part))
