"""The sharded-collection folder: its manifest, the id -> shard routing and the shard folders.

Layout::

    collection.json   manifest: format, version, shards, model, index kind and params, hybrid,
                      the build arguments (a rerun must match them), complete (bool)
    codec.npz         PLAID only: centroids and buckets every shard adopts (trained once)
    ids.json          every document id, in input order (written when the build completes)
    bm25/             hybrid only: BM25 over the union of the shards (collection-wide statistics)
    shard-000/ ...    one retriever folder per shard (no BM25 of their own)

A document lives in the shard ``shard_of(id, n_shards)`` (a hash of the id), so any process routes
``get``/``subset`` without a lookup table, and a retried or rerun batch lands where it did before.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from maxsim.errors import AlreadyExistsError, CorruptedError, InvalidInputError, NotFoundError

MANIFEST = "collection.json"
FORMAT = "maxsim-collection"
FORMAT_VERSION = 1
CODEC = "codec.npz"
IDS = "ids.json"
BM25 = "bm25"


def shard_of(doc_id: str, n_shards: int) -> int:
    """The shard (0 .. n_shards - 1) of a document id: the first 8 bytes of its BLAKE2b hash mod n."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_shards


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


def is_collection(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict:
    """The manifest of ``folder`` (NotFoundError / CorruptedError naming the file)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise NotFoundError(f"{folder} is not a sharded collection ({MANIFEST} missing).")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CorruptedError(f"{path} is not valid JSON ({exc}); rebuild the collection.") from None
    if body.get("format") != FORMAT or body.get("format_version", 0) > FORMAT_VERSION:
        raise CorruptedError(f"{path}: format {body.get('format')!r} version {body.get('format_version')!r} "
                             f"is not a {FORMAT} this maxsim reads (version <= {FORMAT_VERSION}).")
    return body


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON to a temporary name, fsync, then rename over ``path``."""
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def new_manifest(settings: dict) -> dict:
    """A manifest for a build with ``settings`` (model, index, index_params, hybrid, shards, input)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **settings,
            "shard_folders": [shard_name(i) for i in range(settings["shards"])], "complete": False}


def check_rerun(folder: Path, body: dict, settings: dict) -> None:
    """A rerun must repeat the build's settings; AlreadyExistsError names the first that differs."""
    for key, value in settings.items():
        if body.get(key) != value:
            raise AlreadyExistsError(
                f"{folder} holds a collection built with {key}={body.get(key)!r}, not {value!r}: rerun with "
                "the same arguments to finish it, or pick a new output folder.")


def read_ids(folder: Path) -> list[str]:
    try:
        ids = json.loads((Path(folder) / IDS).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptedError(f"{Path(folder) / IDS} cannot be read ({exc}); rerun the build to rewrite it.") from None
    if not isinstance(ids, list):
        raise CorruptedError(f"{Path(folder) / IDS}: expected a list of ids; rerun the build to rewrite it.")
    return ids


def check_complete(folder: Path, body: dict) -> None:
    if not body.get("complete"):
        raise CorruptedError(f"{folder}: the build of this collection did not finish; rerun the same "
                             "`maxsim index ... --ray` command to finish it.")


def check_shards(n_shards) -> int:
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise InvalidInputError(f"shards must be a positive int, got {n_shards!r}.")
    return n_shards
