"""Crash-safe storage shared by every index kind: manifest, checksums, atomic commits, writer lock.

Layout of an index folder::

    manifest.json          the committed state: {"body": {...}, "crc32": "..."}
    LOCK                   flock(2)-ed by a writer for the duration of one change
    seg-<tag>-<name>.npy   immutable segment files (token data, ids, tombstones ...)
    shared-<tag>-<name>    immutable files shared by all segments (PLAID centroids, buckets)

A change never modifies a file that a committed manifest references. It writes new files under
temporary names, fsyncs them, renames them to their final (never reused) names, fsyncs the folder,
then writes the new manifest under a temporary name, fsyncs it and renames it over
``manifest.json`` (atomic on POSIX), and fsyncs the folder again. A process killed at any instant
therefore leaves either the old or the new manifest, each referencing only complete files;
leftovers of a killed writer are deleted by the next writer. Readers that opened an older
manifest keep their memory maps (an unlinked file stays readable while mapped).

Integrity: the manifest records, per file, its size and CRC-32, and for files larger than
``SMALL_FILE_BYTES`` the CRC-32 of every 1 MiB block (``maxsim.index.blocks``). ``open`` checks
every file's size and the CRC-32 of every small file (ids, metadata, doc lengths, tombstones,
centroids ...); the blocks of a large token array are checked the first time they are read. Every
file is checked in full by ``Index.verify()`` (or on open with ``verify=True`` /
``MAXSIM_INDEX_VERIFY=1``, inside a retriever folder too). Arrays are also range-checked where a
bad value could index out of bounds. Any mismatch raises ``CorruptedError`` naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from maxsim.errors import CorruptedError, InvalidInputError, LockedError, NotFoundError
from maxsim.index import blocks
from maxsim.index.blocks import CheckedArray, crc32, file_checksums

MANIFEST = "manifest.json"
LOCK = "LOCK"
FORMAT = "maxsim-index"
FORMAT_VERSION = 2  # 2: product-quantized residuals ranked from the codes, block checksums; 1 still opens
REBUILD = "rebuild it with `maxsim index INPUT --output FOLDER` (or re-add the documents to a new index)"
MANAGED_PREFIXES = ("seg-", "shared-", ".tmp-")


def crc32_file(path: Path, chunk: int = 16 << 20) -> str:
    crc = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            crc = crc32(block, crc)
    return f"{crc & 0xFFFFFFFF:08x}"


def crc32_bytes(data: bytes) -> str:
    return f"{crc32(data) & 0xFFFFFFFF:08x}"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_tag() -> str:
    """A fresh, never reused file-name tag: time plus randomness."""
    return f"{int(time.time() * 1000):x}{secrets.token_hex(4)}"


class FileWriter:
    """Writes the files of one change: temp name, fsync, rename to the final name, records size + crc."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written: dict[str, dict] = {}

    def _finish(self, tmp: Path, name: str) -> str:
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / name)
        self.written[name] = file_checksums(self.folder / name)
        return name

    def tmp_path(self, name: str) -> Path:
        return self.folder / f".tmp-{os.getpid()}-{secrets.token_hex(3)}-{name}"

    def array(self, name: str, array: np.ndarray) -> str:
        tmp = self.tmp_path(name)
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        return self._finish(tmp, name)

    def json(self, name: str, obj) -> str:
        tmp = self.tmp_path(name)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        return self._finish(tmp, name)

    def sync(self) -> None:
        fsync_dir(self.folder)


class Manifest:
    """Read and commit the manifest (a JSON body protected by its own CRC-32)."""

    @staticmethod
    def read(folder: Path) -> dict:
        path = folder / MANIFEST
        if not path.exists():
            raise NotFoundError(f"{folder} holds no index ({MANIFEST} not found).")
        raw = path.read_bytes()
        try:
            outer = json.loads(raw)
            body = outer["body"]
            expected = outer["crc32"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptedError(f"{path}: not a valid index manifest ({exc}).") from None
        if crc32_bytes(json.dumps(body, sort_keys=True).encode()) != expected:
            raise CorruptedError(f"{path}: checksum mismatch (the manifest is corrupted).")
        if body.get("format") != FORMAT:
            raise CorruptedError(f"{path}: format {body.get('format')!r} is not {FORMAT!r}.")
        if body.get("format_version", 0) > FORMAT_VERSION:
            raise InvalidInputError(f"{path}: index format version {body.get('format_version')} is newer than this "
                                    f"maxsim reads (1 to {FORMAT_VERSION}): upgrade maxsim, or {REBUILD}.")
        return body

    @staticmethod
    def commit(folder: Path, body: dict) -> None:
        text = json.dumps({"body": body, "crc32": crc32_bytes(json.dumps(body, sort_keys=True).encode())},
                          indent=1)
        tmp = folder / f".tmp-{os.getpid()}-{secrets.token_hex(3)}-{MANIFEST}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST)
        fsync_dir(folder)


def check_files(folder: Path, files: dict[str, dict], full: bool = False) -> None:
    """Sizes of all files; CRC-32 of the small ones (of all with ``full``). Raises naming the file."""
    check_sizes(folder, files)
    for name, info in files.items():
        if full or not is_large(info):
            if crc32_file(folder / name) != info["crc32"]:
                raise CorruptedError(f"{folder / name}: checksum mismatch (the file is corrupted).")


_VERIFIED: set[tuple[str, str]] = set()


def verify_env() -> bool:
    """``MAXSIM_INDEX_VERIFY=1``: check every file in full when an index state is loaded."""
    return os.environ.get("MAXSIM_INDEX_VERIFY", "") not in ("", "0")


def check_new_files(folder: Path, files: dict[str, dict]) -> None:
    """``check_files(full=True)`` of the files this process has not checked in full yet (files
    are immutable: once is enough)."""
    todo = {name: info for name, info in files.items() if (str(folder / name), info["crc32"]) not in _VERIFIED}
    check_files(folder, todo, full=True)
    _VERIFIED.update((str(folder / name), info["crc32"]) for name, info in todo.items())


def check_sizes(folder: Path, files: dict[str, dict]) -> None:
    """Every file exists with the size the manifest recorded (one stat each: cheap enough to run
    before each read, so that a file truncated under a running reader is named, not a SIGBUS)."""
    for name, info in files.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CorruptedError(f"{path}: file missing (referenced by the index state).") from None
        if size != info["bytes"]:
            raise CorruptedError(f"{path}: {size} bytes, the index state recorded {info['bytes']} "
                                      "(truncated or overwritten).")


def is_large(info: dict) -> bool:
    """A file checked block by block as it is read (not in full at open)."""
    return "blocks" in info or info["bytes"] > blocks.SMALL_FILE_BYTES


def open_array(folder: Path, name: str, info: dict):
    """A token array: memory-mapped, as a ``CheckedArray`` when it is large (see ``is_large``)."""
    if not is_large(info):
        return load_array(folder, name)
    try:
        return CheckedArray(folder / name, info)
    except ValueError as exc:
        raise CorruptedError(f"{folder / name}: unreadable array ({exc}).") from None


def load_array(folder: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = folder / name
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a damaged header or a wrong size
        raise CorruptedError(f"{path}: unreadable array ({exc}).") from None


def load_json(folder: Path, name: str):
    path = folder / name
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise CorruptedError(f"{path}: unreadable JSON ({exc}).") from None


@contextmanager
def writer_lock(folder: Path, timeout: float):
    """Exclusive flock on ``folder/LOCK``; waits up to ``timeout`` seconds, then raises
    ``LockedError`` naming the process that holds it (its pid is written into the file)."""
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(f"{path} is held by another writer ({_holder(path)}); waited "
                                           f"{timeout:.0f} s: retry when it has finished, or stop it.") from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "process unknown"


class FolderManifest:
    """Where a standalone index commits: ``manifest.json`` and ``LOCK`` in its own folder. (Inside a
    retriever folder the owner of the folder's state passes its own object with the same methods.)"""

    def __init__(self, folder: Path, lock_timeout: float = 60.0):
        self.folder, self.lock_timeout = Path(folder), lock_timeout

    def read(self) -> dict:
        return Manifest.read(self.folder)

    def lock(self):
        return writer_lock(self.folder, self.lock_timeout)

    def commit(self, body: dict) -> None:
        """Publish ``body`` atomically, then delete the files no longer referenced."""
        Manifest.commit(self.folder, body)
        collect_garbage(self.folder, set(body["files"]))


def collect_garbage(folder: Path, keep: set[str]) -> None:
    """Delete managed files that the committed manifest does not reference (writer lock held)."""
    for entry in os.scandir(folder):
        if entry.name.startswith(MANAGED_PREFIXES) and entry.name not in keep:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


def read_manifest(path: Path, format: str, version: int, what: str, fix: str) -> dict:
    """The JSON manifest at ``path`` of ``format``, format version at most ``version``, of a ``what``
    (e.g. "retriever folder").
    ``NotFoundError`` when it is missing, ``CorruptedError`` when it is not such a manifest,
    ``InvalidInputError`` for a newer version; each names ``path`` and ends with ``fix``."""
    if not path.is_file():
        raise NotFoundError(f"{path.parent} is not a {what} ({path.name} missing): {fix}.")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptedError(f"{path} is not valid JSON ({exc}): {fix}.") from None
    if not isinstance(body, dict) or body.get("format") != format:
        raise CorruptedError(f"{path}: not a {format} manifest: {fix}.")
    if not isinstance(body.get("format_version"), int) or body["format_version"] > version:
        raise InvalidInputError(f"{path}: format version {body.get('format_version')!r}; this maxsim reads "
                                f"versions up to {version}: {fix}.")
    return body
