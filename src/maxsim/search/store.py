"""``state.sqlite3``: the one owner of a retriever folder's ids and versions.

Tables: ``documents`` (id, text, metadata JSON, token vectors, passages), ``passages`` (key -> the
document and its character span; the index stores vectors under ``str(key)``), ``fields`` (indexed
metadata values for filters, see ``maxsim.search.filters``) and ``commits`` (version -> the index's
committed state, the BM25 copy of that version and the digest of its tables). A folder of pages adds
the tables of ``maxsim.search.pages`` (``schema``, given at creation). Every row of the text tables
carries a checksum (``maxsim.search.integrity``): a read checks the rows it uses, and the first read
of each version in a process verifies the whole version, so damage is a ``CorruptedError`` naming the
file, never a changed answer.

A write is one SQLite transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, WAL, ``synchronous=FULL``):
the new ``commits`` row is the commit point of version N+1 for the index, the texts and BM25 at once.
A read runs inside one read transaction, so it sees one version from start to end: SQLite's WAL
snapshot keeps rows that a newer version deleted readable until the reader ends (nothing is purged
while a reader needs it). Each thread has its own connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from maxsim.errors import CorruptedError, LockedError, NotFoundError
from maxsim.search.filters import FIELDS_SCHEMA, compile_filter, field_rows
from maxsim.search.integrity import TABLES, Digest, add_checksums, checked, damaged, row_crc, verify_version

FILE = "state.sqlite3"
SCHEMA = """
CREATE TABLE documents (id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT, n_tokens INTEGER NOT NULL,
                        n_passages INTEGER NOT NULL, crc INTEGER NOT NULL DEFAULT 0);
CREATE TABLE passages (key INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, ord INTEGER NOT NULL,
                       start INTEGER NOT NULL, end INTEGER NOT NULL, crc INTEGER NOT NULL DEFAULT 0);
CREATE INDEX passages_doc ON passages(doc);
CREATE TABLE commits (version INTEGER PRIMARY KEY, index_body TEXT NOT NULL, bm25 TEXT, created REAL NOT NULL,
                      digest TEXT, crc INTEGER);
"""
ID_SLICE = 900  # SQLite caps bound parameters per statement
DOC_COLUMNS = "id, text, metadata, n_tokens, n_passages, crc"
PASSAGE_COLUMNS = "key, doc, ord, start, end, crc"
CHECKED_VERSIONS = 8  # (version, file state) pairs remembered as verified


class StateStore:
    """Connections to one ``state.sqlite3``; ``read()`` / ``write()`` give a ``Snapshot``. ``schema``:
    tables added to a new store (``create``)."""

    def __init__(self, path: Path, create: bool = False, schema: str = ""):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise CorruptedError(f"{self.path} is missing: the folder's documents are gone. Restore it from a "
                                 "backup or rebuild the folder with `maxsim index`.")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard, self._verifying = threading.Lock(), threading.Lock()
        self._checked: list[tuple] = []
        self._writer: sqlite3.Connection | None = None
        self._mode = "rwc" if create else "rw"  # a missing file is never silently recreated
        if create:
            with self.damage_named():
                self._connection().executescript(SCHEMA + FIELDS_SCHEMA + schema)
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
        """SQLite errors of a damaged or missing file (and text SQLite cannot give as UTF-8) ->
        ``CorruptedError`` naming it (a busy file: ``LockedError``); errors of the statements
        themselves (``ProgrammingError``) pass."""
        try:
            yield
        except UnicodeDecodeError as exc:  # a damaged schema: SQLite's own message is not UTF-8
            raise CorruptedError(f"{self.path}: the document store is damaged (unreadable text: {exc}); restore it "
                                 "from a backup or rebuild the folder with `maxsim index`.") from None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.ProgrammingError):
                raise
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise LockedError(f"{self.path} is locked by another process ({exc}): retry later.") from None
            raise CorruptedError(f"{self.path}: the document store is damaged ({exc}); restore it from a "
                                 "backup, run `maxsim check --repair` on the folder, or rebuild it with "
                                 "`maxsim index`.") from None

    @contextlib.contextmanager
    def read(self, verify: bool = True):
        """One consistent read of the newest committed version (re-entrant within a thread);
        ``verify``: check the version first (off only to inspect a damaged one)."""
        conn = self._connection()
        if self._local.snapshot is not None:
            yield self._local.snapshot
            return
        with self.damage_named():
            conn.execute("BEGIN")
            try:
                snap = Snapshot(conn, self.path)
                self._local.snapshot = self._verified(snap) if verify else snap
                yield self._local.snapshot
            finally:
                self._local.snapshot = None
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self, verify: bool = True):
        """One write transaction on the writer's own connection (the caller holds the folder's
        lock); committed when the block ends, rolled back if it raises. ``verify``: check the
        version it builds on first (off only to repair a damaged one)."""
        with self._immediate() as conn:
            snap = Snapshot(conn, self.path)
            yield self._verified(snap) if verify else snap

    @contextlib.contextmanager
    def _immediate(self):
        """``BEGIN IMMEDIATE`` on the writer's connection; ``COMMIT`` after the block, ``ROLLBACK`` if it raises."""
        if self._writer is None:
            self._writer = self._connect()
        conn = self._writer
        with self.damage_named():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _verified(self, snap: Snapshot) -> Snapshot:
        """``snap`` once its version passed ``verify_version`` (once per version and state of the
        files on disk: damage written later is found by the next read after it)."""
        key = (snap.version, self._file_state())
        if key not in self._checked:
            with self._verifying:
                if key not in self._checked:
                    verify_version(snap.conn, self.path, snap.digest)
                    self._checked = [*self._checked[1 - CHECKED_VERSIONS:], key]
        return snap

    def _file_state(self) -> tuple:
        """(inode, size, mtime) of the database file and its WAL: any change on disk changes it."""
        return _stat(self.path), _stat(self.path.with_name(self.path.name + "-wal"))

    def initialize(self, index_body: dict, bm25: str | None, created: float) -> None:
        """Commit version 0 of a new folder (called once, by create)."""
        with self.damage_named():
            self._connection().execute("INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?)",
                                       commit_row(0, index_body, bm25, created, Digest()))

    def needs_upgrade(self) -> bool:
        """Whether the store predates row checksums (``upgrade`` adds them, under the folder's lock)."""
        with self.damage_named():
            columns = [row[1] for row in self._connection().execute("PRAGMA table_info(commits)")]
        return "crc" not in columns

    def upgrade(self) -> None:
        """Add the checksum columns, each row's CRC and the newest commit's digest (the caller holds
        the folder's lock); readers see the store before or after, never between."""
        with self._immediate() as conn:
            if self.needs_upgrade():
                add_checksums(conn)

    def restore_from(self, path: Path) -> None:
        """Copy the store at ``path`` over this one with SQLite's backup API: one write transaction,
        so readers in any process see it as a new version (the caller holds the folder's lock)."""
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            with self.damage_named():
                source.backup(self._connect())
        finally:
            source.close()

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local, self._writer = threading.local(), None


class Snapshot:
    """Queries against one version (inside a read or write transaction); ``digest``: its tables'
    ``Digest`` (kept up to date by the writes of a write transaction)."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn, self.path = conn, path
        row = conn.execute("SELECT version, index_body, bm25, created, digest, crc FROM commits "
                           "ORDER BY version DESC LIMIT 1").fetchone()
        if row is None:
            raise CorruptedError(f"{path} holds no committed version (an interrupted create?): delete the "
                                 "folder and create it again.")
        version, self._body, self.bm25, _, digest = checked(path, "commits", row)
        self.version, self.digest = int(version), Digest(json.loads(digest) if digest else None)
        self._next_key: int | None = None

    @property
    def index_body(self) -> dict:
        return json.loads(self._body)

    # -- documents -----------------------------------------------------------------------------
    def documents(self, ids: Sequence[str]) -> dict[str, tuple]:
        """id -> (id, text, metadata JSON, n_tokens, n_passages) for the ids present, checked."""
        out = {}
        for part in _slices(ids):
            for row in self.conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE id IN ({_marks(part)})", part):
                row = checked(self.path, "documents", row)
                out[row[0]] = row
        return out

    def present(self, ids: Sequence[str]) -> list[str]:
        return list(self.documents(ids))

    def require(self, ids: Sequence[str]) -> dict[str, tuple]:
        """Rows of ``ids`` (NotFoundError naming the first unknown id)."""
        found = self.documents(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"id {missing[0]!r} is not in the collection ({len(missing)} unknown ids); "
                                "nothing was changed.")
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
            raise damaged(self.path, f"document {missing[0]!r} that the index holds is missing")
        return {i: {"text": row[1], "metadata": _metadata(row[2])} for i, row in found.items()}

    def all_texts(self) -> tuple[list[str], list[str]]:
        rows = [checked(self.path, "documents", row)
                for row in self.conn.execute(f"SELECT {DOC_COLUMNS} FROM documents ORDER BY rowid")]
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
            for row in self.conn.execute(f"SELECT {PASSAGE_COLUMNS} FROM passages WHERE key IN ({_marks(part)})", part):
                row = checked(self.path, "passages", row)
                out[row[0]] = row[1:]
        if len(out) != len(set(keys)):
            missing = next(k for k in keys if k not in out)
            raise damaged(self.path, f"passage {missing} that the index holds is missing")
        return out

    def passage_rows(self, ids: Sequence[str]) -> list[tuple[int, str, int, int, int]]:
        """(key, doc, ordinal, start, end) of the passages of the documents ``ids``, checked."""
        rows = []
        for part in _slices(ids):
            rows += [checked(self.path, "passages", row) for row in self.conn.execute(
                f"SELECT {PASSAGE_COLUMNS} FROM passages WHERE doc IN ({_marks(part)})", part)]
        return rows

    def passage_keys(self, ids: Sequence[str]) -> list[int]:
        return [row[0] for row in self.passage_rows(ids)]

    def doc_passages(self, doc_id: str) -> list[tuple[int, int, int, int]]:
        """(key, ordinal, start, end) of one document's passages, in text order (all of them: their
        number is checked against the document's)."""
        rows = sorted(((row[0], *row[2:]) for row in self.passage_rows([doc_id])), key=lambda row: row[1])
        listed = self.require([doc_id])[doc_id][4]
        if [row[1] for row in rows] != list(range(listed)):
            raise damaged(self.path, f"document {doc_id!r} lists {listed} passages, {len(rows)} are stored")
        return rows

    def listing(self, filter: dict | None, limit: int, offset: int) -> list[tuple[str, str, dict | None]]:
        """``(id, text, metadata)`` of the documents matching ``filter`` (all when None), in id order,
        ``limit`` of them from ``offset``."""
        where, params = compile_filter(filter) if filter is not None else ("1", [])
        rows = self.conn.execute(f"SELECT {DOC_COLUMNS.replace('id', 'd.id', 1)} FROM documents d WHERE ({where}) "
                                 "ORDER BY d.id LIMIT ? OFFSET ?", [*params, limit, offset])
        rows = [checked(self.path, "documents", row) for row in rows]
        return [(doc_id, text, _metadata(meta)) for doc_id, text, meta, *_ in rows]

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
        """Passage keys of the documents matching ``filter`` (and among ``ids`` when given)."""
        return self.passage_keys(self.filter_ids(filter, ids))

    # -- writes (inside ``StateStore.write``) ----------------------------------------------------
    def insert(self, doc_id: str, text: str, metadata: dict | None, spans: list[tuple[int, int]],
               n_tokens: int) -> list[int]:
        """Store a document and its passages; returns the passage keys (for the index)."""
        meta = None if metadata is None else json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        self.put("documents", (doc_id, text, meta, n_tokens, len(spans)))
        for row in field_rows(metadata):
            self.put("fields", (doc_id, *row))
        keys = [self._new_key() for _ in spans]
        for j, (key, (start, end)) in enumerate(zip(keys, spans)):
            self.put("passages", (key, doc_id, j, start, end))
        return keys

    def put(self, table: str, row: tuple) -> None:
        """Insert ``row`` (the columns of ``integrity.TABLES[table]``) with its CRC."""
        crc = row_crc(*row)
        self.conn.execute(f"INSERT INTO {table} ({', '.join(TABLES[table])}, crc) VALUES "
                          f"({_marks(row)}, ?)", (*row, crc))
        self.digest.add(table, crc)

    def _new_key(self) -> int:
        """The next passage key (AUTOINCREMENT's: never one used before)."""
        if self._next_key is None:
            row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
            self._next_key = (row[0] if row else 0) + 1
        self._next_key += 1
        return self._next_key - 1

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete documents, their passages and fields (each row checked, and their numbers against
        the documents'); returns the passage keys they had."""
        docs = self.require(ids).values()
        passages = self.passage_rows(ids)
        fields = []
        for part in _slices(ids):
            fields += [checked(self.path, "fields", row) for row in self.conn.execute(
                f"SELECT doc, key, t, v, crc FROM fields WHERE doc IN ({_marks(part)})", part)]
        if len(passages) != sum(row[4] for row in docs) or \
                len(fields) != sum(len(field_rows(_metadata(row[2]))) for row in docs):
            raise damaged(self.path, f"the passages or fields of {len(ids)} documents to delete are incomplete")
        for table, rows in (("documents", docs), ("passages", passages), ("fields", fields)):
            for row in rows:
                self.digest.add(table, row_crc(*row), sign=-1)
        for part in _slices(ids):
            for table, column in (("passages", "doc"), ("fields", "doc"), ("documents", "id")):
                self.conn.execute(f"DELETE FROM {table} WHERE {column} IN ({_marks(part)})", part)
        return [row[0] for row in passages]

    def commit_version(self, index_body: dict, bm25: str | None, created: float) -> int:
        self.version += 1
        self.conn.execute("INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?)",
                          commit_row(self.version, index_body, bm25, created, self.digest))
        return self.version

    def recent_commits(self, n: int) -> list[tuple[int, dict, str | None]]:
        rows = self.conn.execute("SELECT version, index_body, bm25, created, digest, crc FROM commits "
                                 "ORDER BY version DESC LIMIT ?", (n,))
        return [(int(v), json.loads(body), bm25) for v, body, bm25, *_ in
                (checked(self.path, "commits", row) for row in rows)]

    def forget_commits(self, below: int) -> None:
        self.conn.execute("DELETE FROM commits WHERE version < ?", (below,))


def commit_row(version: int, index_body: dict, bm25: str | None, created: float, digest: Digest) -> tuple:
    """The ``commits`` row of a version, with its CRC."""
    row = (version, json.dumps(index_body), bm25, created, digest.dumps())
    return (*row, row_crc(*row))


def _stat(path: Path) -> tuple | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _metadata(raw: str | None):
    return None if raw is None else json.loads(raw)


def _slices(ids: Sequence) -> Iterable[list]:
    ids = list(ids)
    for start in range(0, len(ids), ID_SLICE):
        yield ids[start: start + ID_SLICE]


def _marks(part: Sequence) -> str:
    return ",".join("?" * len(part))
