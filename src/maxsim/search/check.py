"""``maxsim check``: full verification of a collection, and the repair of what can be rebuilt.

``check(path)`` reads every stored byte a read could use and lists what is damaged (``Finding``):
the manifest's checksum; ``state.sqlite3`` through SQLite's ``PRAGMA integrity_check`` and through
``integrity.verify_version`` (every row's CRC, every index against its table, each table against the
digest of its commit, the kept commits' CRCs); the CRC-32 of every index file the kept versions name
(``maxsim.index.storage.check_files`` with ``full=True``); the agreement of the store and the index
(the same passages, each document's token count) and of the store and BM25 (the copy of the newest
version loads, passes its checksums and lists the store's documents in order). A sharded collection
checks its manifest, its state, its collection-wide BM25 and each shard.

``repair(path)`` rebuilds what can be rebuilt from what is intact: the store's SQLite indexes and
metadata field index (a new ``state.sqlite3`` written from its checked document and passage rows,
copied over the old one with SQLite's backup API, so open readers see the repaired version as a new
commit) and the BM25 copy. Damaged documents or passages rows, index files or manifests cannot be
rebuilt here: restore them from a backup or index the documents again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from maxsim.errors import CorruptedError, MaxsimError
from maxsim.index import KINDS
from maxsim.index.storage import check_files, writer_lock
from maxsim.search import folder as layout
from maxsim.search.bm25 import BM25Index, BM25Versions
from maxsim.search.filters import field_rows
from maxsim.search.integrity import TABLES, checked, verify_version
from maxsim.search.store import FILE, StateStore
from maxsim.search.versions import KEEP_VERSIONS, Staged

LOCK_WAIT = 60.0  # seconds a repair waits for a writer to finish
CHUNK = 4096  # passages whose vectors are read at once
OWN = ("documents", "passages", "passages_doc", "fields", "fields_value", "fields_doc", "commits")


@dataclass(frozen=True)
class Finding:
    """Damage found: the ``file`` it is in, what is wrong, and whether ``repair`` can rebuild it."""

    file: Path
    problem: str
    repairable: bool = False

    def __str__(self) -> str:
        named = self.problem if self.problem.startswith(str(self.file)) else f"{self.file}: {self.problem}"
        return named + (" (repairable: maxsim check --repair)" if self.repairable else "")


@dataclass
class Intact:
    """What the newest version's checked rows say: its commit, documents and passages."""

    version: int
    commits: list[tuple[int, dict, str | None]]
    documents: list[tuple]  # (id, text, metadata, n_tokens, n_passages), rowid order
    passages: list[tuple]  # (key, doc, ord, start, end)
    sequence: int
    schema: str  # the SQL of tables and triggers other than the store's own (a page folder's)
    extra: dict[str, list[tuple]]  # their rows, as stored


def check_folder(folder: Path) -> list[Finding]:
    """The problems of one retriever folder."""
    try:
        manifest = layout.read_settings(folder)
        store = StateStore(folder / FILE)
    except MaxsimError as error:
        return [Finding(folder / layout.MANIFEST, str(error))]
    with contextlib.closing(store):
        findings = _sqlite_check(store)
        try:
            intact = read_intact(store)
        except CorruptedError as error:  # the rows a rebuild needs are damaged: nothing is repairable
            return [*(replace(f, repairable=False) for f in findings), Finding(store.path, str(error))]
        findings += _version_check(store)
        findings += _index_check(folder, manifest, intact)
        if manifest["hybrid"]:
            findings += _bm25_check(folder / "bm25", intact)
    return findings


def _sqlite_check(store: StateStore) -> list[Finding]:
    """SQLite's own ``PRAGMA integrity_check`` (b-tree structure, indexes against tables)."""
    try:
        with store.damage_named(), store.read(verify=False) as snap:
            lines = [row[0] for row in snap.conn.execute("PRAGMA integrity_check(20)")]
    except CorruptedError as error:
        return [Finding(store.path, str(error), True)]
    return [] if lines == ["ok"] else [Finding(store.path, "SQLite integrity_check: " + "; ".join(lines), True)]


def read_intact(store: StateStore) -> Intact:
    """The newest version's commit rows, documents and passages read from the tables themselves
    (no SQLite index), each row checked (``CorruptedError`` at the first that is not intact)."""
    with store.damage_named(), store.read(verify=False) as snap:
        commits = snap.recent_commits(KEEP_VERSIONS)
        rows = {table: [checked(store.path, table, row) for row in snap.conn.execute(
            f"SELECT {', '.join(TABLES[table])}, crc FROM {table} NOT INDEXED ORDER BY rowid")]
                for table in ("documents", "passages")}
        sequence = snap.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
        others = snap.conn.execute("SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT "
                                   f"LIKE 'sqlite_%' AND name NOT IN ({', '.join('?' * len(OWN))})", OWN).fetchall()
        extra = {name: snap.conn.execute(f"SELECT * FROM {name}").fetchall() for kind, name, _ in others
                 if kind == "table"}
    return Intact(snap.version, commits, rows["documents"], rows["passages"], sequence[0] if sequence else 0,
                  ";\n".join(sql for _, _, sql in others), extra)


def _version_check(store: StateStore) -> list[Finding]:
    """``verify_version`` of the newest version (repairable: the rows it needs are intact)."""
    try:
        with store.damage_named(), store.read(verify=False) as snap:
            verify_version(snap.conn, store.path, snap.digest)
    except CorruptedError as error:
        return [Finding(store.path, str(error), True)]
    return []


def _index_check(folder: Path, manifest: dict, intact: Intact) -> list[Finding]:
    """Every file of the kept versions against its CRC-32; the newest version's passages and token
    counts against the store's."""
    index_folder, findings, seen = folder / "index", [], set()
    for _, body, _ in intact.commits:
        for name, info in body["files"].items():
            if name not in seen:
                seen.add(name)
                try:
                    check_files(index_folder, {name: info}, full=True)
                except CorruptedError as error:
                    findings.append(Finding(index_folder / name, str(error)))
    if findings:
        return findings
    body = intact.commits[0][1]
    try:
        view = KINDS[manifest["kind"]](index_folder, body, manifest=Staged(body), segment_cache={})
    except CorruptedError as error:
        return [Finding(index_folder, str(error))]
    keys = [str(row[0]) for row in intact.passages]
    if sorted(view.ids()) != sorted(keys):
        return [Finding(index_folder, f"holds {len(view)} passages; {FILE} lists {len(keys)} (not the same ones)")]
    tokens = dict.fromkeys((row[0] for row in intact.documents), 0)
    for start in range(0, len(keys), CHUNK):
        vectors = view.get_embeddings(keys[start: start + CHUNK])
        for row, passage in zip(intact.passages[start: start + CHUNK], vectors):
            tokens[row[1]] = tokens.get(row[1], 0) + len(passage)
    wrong = [row[0] for row in intact.documents if tokens[row[0]] != row[3]]
    return [Finding(index_folder, f"the vectors of document {wrong[0]!r} ({len(wrong)} documents) do not match "
                                  f"the token counts {FILE} lists")] if wrong else []


def _bm25_check(root: Path, intact: Intact) -> list[Finding]:
    name = intact.commits[0][2]
    copy = BM25Index.load(root / name) if name else None
    if copy is None:
        return [Finding(root / str(name), "the BM25 copy of the newest version is missing or fails its checksums "
                                          "(searches rebuild it in memory)", True)]
    if copy.ids != [row[0] for row in intact.documents]:
        return [Finding(root / name, "the BM25 copy lists other documents than the store", True)]
    return []


def repair_folder(folder: Path) -> list[str]:
    """Rebuild the store's indexes, its metadata field index and the BM25 copy of ``folder`` from its
    intact rows, as a new version; returns what was rebuilt."""
    manifest = layout.read_settings(folder)
    if not [f for f in check_folder(folder) if f.repairable]:
        return []
    with writer_lock(folder, LOCK_WAIT), contextlib.closing(StateStore(folder / FILE)) as store:
        intact = read_intact(store)
        bm25 = (BM25Versions(folder / "bm25").publish([row[0] for row in intact.documents],
                                                      [row[1] for row in intact.documents])
                if manifest["hybrid"] else None)
        rebuilt = folder / f".repair-{os.getpid()}-{FILE}"
        try:
            _write_store(rebuilt, intact, bm25)
            store.restore_from(rebuilt)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{rebuilt}{suffix}").unlink(missing_ok=True)
    done = [f"{folder / FILE}: indexes, metadata field index and digest rebuilt from {len(intact.documents)} "
            f"documents as version {intact.version + 1}"]
    return done + ([f"{folder / 'bm25' / bm25}: BM25 rebuilt"] if bm25 else [])


def _write_store(path: Path, intact: Intact, bm25: str | None) -> None:
    """A new store at ``path`` holding ``intact``'s rows, fields rebuilt from their metadata, and its
    newest commit again as version ``intact.version + 1``."""
    store = StateStore(path, create=True, schema=";\n" + intact.schema if intact.schema else "")
    with contextlib.closing(store):
        store.initialize({}, None, time.time())
        with store.write(verify=False) as snap:
            for row in intact.documents:
                snap.put("documents", row)
                for field in field_rows(None if row[2] is None else json.loads(row[2])):
                    snap.put("fields", (row[0], *field))
            for row in intact.passages:
                snap.put("passages", row)
            for table, rows in intact.extra.items():
                if rows:
                    snap.conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
            snap.conn.execute("DELETE FROM sqlite_sequence WHERE name = 'passages'")
            snap.conn.execute("INSERT INTO sqlite_sequence VALUES ('passages', ?)",
                              (max([intact.sequence, *(row[0] for row in intact.passages)]),))
            snap.version = intact.version
            snap.commit_version(intact.commits[0][1], bm25, time.time())
            snap.forget_commits(below=snap.version)
