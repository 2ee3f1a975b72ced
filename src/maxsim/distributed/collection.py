"""The sharded-collection folder: its manifest, its state, the id -> shard routing and the shards.

Layout::

    collection.json   manifest: format, version, model, kind (of index) and its parameters, hybrid,
                      passages, pool factor, shards and their folders, complete (bool); a Ray build
                      also records its arguments (a rerun must match them)
    codec.npz         PLAID only: centroids and buckets every shard adopts (trained once)
    state.json        after each write: the shard versions it left and the name of the BM25 copy
    lexical/<name>/   hybrid only: BM25 over the union of the shards (collection-wide statistics),
                      one copy per recent write, its document order the collection's insertion order
    shard-000/ ...    one retriever folder per shard (no BM25 of their own)
    LOCK              the collection's writer lock

A document lives in the shard ``shard_of(id, n_shards)`` (a hash of the id), so any process routes
``get``, writes and ``subset`` without a lookup table, and a retried batch lands where it did before.
Collections written before ``state.json`` existed keep their BM25 in ``bm25/`` and their ids in
``ids.json``; they open as they are and move to the new layout at their first write.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from maxsim.errors import AlreadyExistsError, CorruptedError, InvalidInputError
from maxsim.index.storage import FileWriter, load_json, read_manifest
from maxsim.search.integrity import seal, unseal

MANIFEST = "collection.json"
FORMAT = "maxsim-collection"
FORMAT_VERSION = 2
CODEC = "codec.npz"
STATE = "state.json"
LEXICAL = "lexical"
LEGACY_BM25, LEGACY_IDS = "bm25", "ids.json"
REBUILD = "rebuild it with `maxsim index INPUT --output DIR --ray`"


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard (0 .. n_shards - 1) of a document id: the first 8 bytes of its BLAKE2b hash mod n."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_shards


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


def is_collection(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_settings(folder: Path) -> dict:
    """The manifest of ``folder`` (errors name the file); collections of format 1 name the kind ``index``."""
    path = Path(folder) / MANIFEST
    body = unseal(read_manifest(path, FORMAT, FORMAT_VERSION, "sharded collection", REBUILD), path, REBUILD)
    if "kind" not in body:
        body["kind"] = body.pop("index")
    return body


def write_json(folder: Path, name: str, obj) -> None:
    """``folder/name`` as JSON with its checksum (``integrity.seal``): written to a temporary name,
    fsynced, renamed, the folder fsynced."""
    writer = FileWriter(Path(folder))
    writer.json(name, seal(obj))
    writer.sync()


def new_settings(settings: dict) -> dict:
    """A manifest for a collection with ``settings`` (model, kind, index_params, hybrid, shards, ...)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **settings,
            "shard_folders": [shard_name(i) for i in range(settings["shards"])], "complete": False}


def check_rerun(folder: Path, body: dict, settings: dict) -> None:
    """A rerun must repeat the build's settings; AlreadyExistsError names the first that differs."""
    for key, value in settings.items():
        if body.get(key) != value:
            raise AlreadyExistsError(
                f"{folder} holds a collection built with {key}={body.get(key)!r}, not {value!r}: rerun with "
                "the same arguments to finish it, or pick a new output folder.")


def check_complete(folder: Path, body: dict) -> None:
    if not body.get("complete"):
        raise CorruptedError(f"{folder}: the build of this collection did not finish; rerun the same "
                             "`maxsim index ... --ray` command to finish it.")


def check_shards(n_shards) -> int:
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise InvalidInputError(f"shards must be a positive int, got {n_shards!r}.")
    return n_shards


def read_state(folder: Path) -> dict | None:
    """``{"shard_versions": [...], "bm25": name or None}`` of the last completed write (None: none yet)."""
    try:
        state = load_json(Path(folder), STATE)
    except FileNotFoundError:
        return None
    fix = "delete it (the next write rewrites it)"
    if not isinstance(state, dict) or not isinstance(state.get("shard_versions"), list):
        raise CorruptedError(f"{Path(folder) / STATE}: not a collection state; {fix}.")
    return unseal(state, Path(folder) / STATE, fix)
