"""``maxsim check`` of a sharded collection: its manifest and state, its collection-wide BM25 copy, and
each shard as a retriever folder (``maxsim.search.check``); ``repair_collection`` repairs the shards and
republishes the BM25 copy from their documents."""

from __future__ import annotations

import contextlib
from pathlib import Path

from maxsim.distributed import collection as col
from maxsim.distributed.lexical import Lexical, insertion_order
from maxsim.errors import MaxsimError
from maxsim.index.storage import writer_lock
from maxsim.search.check import LOCK_WAIT, Finding, check_folder, read_intact, repair_folder
from maxsim.search.store import FILE, StateStore

is_collection = col.is_collection


def check_collection(folder: Path) -> list[Finding]:
    """The problems of the sharded collection in ``folder``."""
    try:
        body = col.read_settings(folder)
        col.check_complete(folder, body)
        state = col.read_state(folder)
    except MaxsimError as error:
        return [Finding(folder / col.MANIFEST, str(error))]
    findings = [finding for name in body["shard_folders"] for finding in check_folder(folder / name)]
    if findings or not body["hybrid"] or state is None:
        return findings
    ids = {doc_id for name in body["shard_folders"] for doc_id in _ids(folder / name)}
    copy = Lexical(folder, True).copies.root / str(state.get("bm25"))
    from maxsim.search.bm25 import BM25Index

    loaded = BM25Index.load(copy)
    if loaded is None or set(loaded.ids) != ids or len(loaded.ids) != len(ids):
        return [Finding(copy, "the collection's BM25 copy is missing, fails its checksums or lists other "
                              "documents than the shards", True)]
    return []


def repair_collection(folder: Path) -> list[str]:
    """Repair every shard, then republish the collection's BM25 copy and state from the shards."""
    body = col.read_settings(folder)
    done = [line for name in body["shard_folders"] for line in repair_folder(folder / name)]
    if not [f for f in check_collection(folder) if f.repairable]:
        return done
    with writer_lock(folder, LOCK_WAIT):
        versions, texts = [], {}
        for name in body["shard_folders"]:
            with contextlib.closing(StateStore(folder / name / FILE)) as store:
                intact = read_intact(store)
            versions.append(intact.version)
            texts.update((row[0], row[1]) for row in intact.documents)
        lexical = Lexical(folder, body["hybrid"])
        state = col.read_state(folder)
        from maxsim.search.bm25 import BM25Index

        previous = BM25Index.load(lexical.copies.root / str(state and state.get("bm25")))
        lexical.publish(versions, insertion_order(previous.ids if previous else [], list(texts), []), texts)
    return [*done, f"{folder / col.LEXICAL}: the collection's BM25 copy rebuilt from {len(texts)} documents"]


def _ids(shard: Path) -> list[str]:
    with contextlib.closing(StateStore(shard / FILE)) as store:
        return [row[0] for row in read_intact(store).documents]
