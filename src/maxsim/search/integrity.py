"""Checksums that let ``state.sqlite3`` detect damage before it changes an answer.

The Python ``sqlite3`` module is usually built without loadable extensions (``enable_load_extension``
is missing here), so SQLite's checksum VFS (``cksumvfs``) cannot be loaded; the store checks its own
contents instead, row by row and version by version:

- every row of ``documents``, ``passages`` and ``fields`` carries ``crc``, the CRC-32 of its columns
  (``row_crc``); every read that uses a row's contents checks it;
- every ``commits`` row carries the CRC-32 of its columns and ``digest``: per table, the number of
  rows and the sum of their CRCs as the writer of that version left them (``Digest``);
- ``verify_version`` reads a whole version through every path the reads take (each table and each
  SQLite index) and compares it with the digest: the first read of a version in a process (and again
  whenever the file changes on disk) runs it, so a damaged index page that would silently drop rows
  from a filter is found before any answer.

Any mismatch is a ``CorruptedError`` naming the file. JSON manifests (``retriever.json``,
``collection.json``) carry a ``crc32`` of their body (``seal`` / ``unseal``).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from maxsim.errors import CorruptedError
from maxsim.search.filters import FIELDS_SCHEMA

TABLES = {"documents": ("id", "text", "metadata", "n_tokens", "n_passages"),
          "passages": ("key", "doc", "ord", "start", "end"),
          "fields": ("doc", "key", "t", "v")}
COMMIT_COLUMNS = ("version", "index_body", "bm25", "created", "digest")
NONE = b"\xff"  # NULL: distinct from any UTF-8 text


def row_crc(*values) -> int:
    """CRC-32 of a row's values: each as its text, length-prefixed (None as a marker), so that no
    two different rows share the bytes."""
    crc = 0
    for value in values:
        data = NONE if value is None else str(value).encode("utf-8", "surrogatepass")
        crc = zlib.crc32(len(data).to_bytes(8, "little") + data, crc)
    return crc


def damaged(path: Path, what: str) -> CorruptedError:
    """The error for damage found in the store ``path``."""
    return CorruptedError(f"{path}: {what}: the document store is damaged. Run `maxsim check {path.parent}` "
                          "to see what, `maxsim check --repair` to rebuild what can be rebuilt, or restore the "
                          "folder from a backup.")


def checked(path: Path, table: str, row: tuple) -> tuple:
    """``row`` (its columns, then ``crc``) without the crc, once the crc matches."""
    if row_crc(*row[:-1]) != row[-1]:
        raise damaged(path, f"a {table} row ({_name(row)}) fails its checksum")
    return row[:-1]


def _name(row: tuple) -> str:
    return repr(row[0])[:80]


class Digest:
    """Per table ``[rows, sum of row CRCs]`` of one version (``state`` is its JSON form)."""

    def __init__(self, state: dict | None = None):
        self.state = {table: list((state or {}).get(table, (0, 0))) for table in TABLES}

    def add(self, table: str, crc: int, sign: int = 1) -> None:
        entry = self.state[table]
        entry[0] += sign
        entry[1] += sign * crc

    def count(self, table: str) -> int:
        return self.state[table][0]

    def dumps(self) -> str:
        return json.dumps(self.state, sort_keys=True)


def verify_version(conn, path: Path, digest: Digest) -> None:
    """Read every row of the version ``conn``'s transaction sees, through its table and through each
    SQLite index the reads use; raise ``CorruptedError`` at the first row failing its CRC, index
    disagreeing with its table, or table disagreeing with ``digest``."""
    found = Digest()
    docs = _scan(conn, path, "documents", "NOT INDEXED", found, lambda row: (row[0], row[4]))
    _same(path, "the id index of documents", sorted(doc_id for doc_id, _ in docs),
          _column(conn, "SELECT id FROM documents INDEXED BY sqlite_autoindex_documents_1 ORDER BY id"))
    passages = _scan(conn, path, "passages", "NOT INDEXED", found, lambda row: (row[1], row[0]))
    _same(path, "the document index of passages", sorted(passages),
          conn.execute("SELECT doc, key FROM passages INDEXED BY passages_doc ORDER BY doc, key").fetchall())
    listed = sum(n for _, n in docs)
    if listed != len(passages):
        raise damaged(path, f"documents list {listed} passages, passages holds {len(passages)}")
    fields = _scan(conn, path, "fields", "NOT INDEXED", found, lambda row: row[0])
    by_value = Digest()
    _scan(conn, path, "fields", "INDEXED BY fields_value", by_value, lambda row: None)
    _same(path, "the value index of fields", found.state["fields"], by_value.state["fields"])
    _same(path, "the document index of fields", sorted(fields),
          _column(conn, "SELECT doc FROM fields INDEXED BY fields_doc ORDER BY doc"))
    for table in TABLES:
        if found.state[table] != digest.state[table]:
            raise damaged(path, f"table {table} holds {found.count(table)} rows, its commit recorded "
                                f"{digest.count(table)} (or their checksums differ)")


def _scan(conn, path: Path, table: str, how: str, digest: Digest, keep) -> list:
    """``keep(row)`` of every row of ``table`` read ``how`` (``NOT INDEXED`` or ``INDEXED BY name``),
    each CRC-checked and added to ``digest``."""
    kept = []
    for row in conn.execute(f"SELECT {', '.join(TABLES[table])}, crc FROM {table} {how}"):
        kept.append(keep(checked(path, table, row)))
        digest.add(table, row[-1])
    return kept


def _column(conn, sql: str) -> list:
    return [row[0] for row in conn.execute(sql)]


def _same(path: Path, what: str, expected: list, found: list) -> None:
    if expected != found:
        raise damaged(path, f"{what} disagrees with its table")


# stores written before checksums: these statements, then FIELDS_SCHEMA, then every row's crc
UPGRADE = [f"ALTER TABLE {table} ADD COLUMN crc INTEGER NOT NULL DEFAULT 0" for table in TABLES] + [
    "ALTER TABLE commits ADD COLUMN digest TEXT", "ALTER TABLE commits ADD COLUMN crc INTEGER",
    "DROP INDEX fields_value"]


def add_checksums(conn) -> None:
    """Give a store written before checksums its ``crc`` columns, every row's CRC and the newest
    commit's digest (inside the caller's write transaction)."""
    for statement in [*UPGRADE, *FIELDS_SCHEMA.split(";")]:
        if statement.strip():
            conn.execute(statement)
    digest = Digest()
    for table, columns in TABLES.items():
        rows = conn.execute(f"SELECT rowid, {', '.join(columns)} FROM {table}").fetchall()
        crcs = [(row_crc(*row[1:]), row[0]) for row in rows]
        conn.executemany(f"UPDATE {table} SET crc = ? WHERE rowid = ?", crcs)
        for crc, _ in crcs:
            digest.add(table, crc)
    newest = conn.execute("SELECT MAX(version) FROM commits").fetchone()[0]
    commits = conn.execute("SELECT version, index_body, bm25, created FROM commits").fetchall()
    for version, body, bm25, created in commits:
        state = digest.dumps() if version == newest else None
        conn.execute("UPDATE commits SET digest = ?, crc = ? WHERE version = ?",
                     (state, row_crc(version, body, bm25, created, state), version))


# -- JSON manifests ------------------------------------------------------------------------------
def seal(body: dict) -> dict:
    """``body`` with ``crc32``: the CRC-32 of its canonical JSON (without that key)."""
    plain = {k: v for k, v in body.items() if k != "crc32"}
    return {**plain, "crc32": _json_crc(plain)}


def unseal(body: dict, path: Path, fix: str) -> dict:
    """``body`` without ``crc32`` once it matches (manifests written before it carry none)."""
    plain = {k: v for k, v in body.items() if k != "crc32"}
    if "crc32" in body and body["crc32"] != _json_crc(plain):
        raise CorruptedError(f"{path}: fails its checksum (the file is damaged): {fix}.")
    return plain


def _json_crc(body: dict) -> str:
    return f"{zlib.crc32(json.dumps(body, sort_keys=True).encode('utf-8')):08x}"
