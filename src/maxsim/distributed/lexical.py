"""The collection-wide BM25 of a sharded collection and the state that names its current copy.

BM25 statistics (document frequencies, average length) are the collection's, so one BM25 spans the
shards. A write commits its shards first, then publishes a new BM25 copy (in the collection's
insertion order, as a folder's BM25 is) and writes ``state.json`` = the shard versions it left and
the copy's name. A process killed between the two leaves shards ahead of the state: ``recover``
(run when a collection opens and before each write, under the collection's lock) rebuilds the copy
from the shards' texts, so a crash never leaves a stale BM25 behind once the collection is reopened.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from maxsim.distributed import collection as col
from maxsim.search.bm25 import BM25Index, BM25Versions


class Lexical:
    """The BM25 copies of the collection in ``folder`` (``hybrid``: whether it keeps BM25)."""

    def __init__(self, folder: Path, hybrid: bool):
        self.folder, self.hybrid = Path(folder), hybrid
        self.copies = BM25Versions(self.folder / col.LEXICAL)
        self._legacy: BM25Index | None = None

    def current(self, texts) -> BM25Index:
        """The BM25 the last write published; ``texts()`` -> (ids, texts) rebuilds a missing copy."""
        state = col.read_state(self.folder)
        if state is not None and state.get("bm25"):
            return self.copies.get(state["bm25"], texts)
        if self._legacy is None:  # built before state.json: its BM25 sits in bm25/
            self._legacy = BM25Index.load(self.folder / col.LEGACY_BM25) or BM25Index.build(*texts())
        return self._legacy

    def stale(self, shard_versions: list[int]) -> bool:
        """Whether shards moved on since the state was written (a write killed half way)."""
        state = col.read_state(self.folder)
        return state is not None and state["shard_versions"] != shard_versions

    def publish(self, shard_versions: list[int], order: list[str], texts: dict[str, str]) -> None:
        """Write the BM25 of ``texts`` in ``order`` (hybrid) and the state naming it, then delete the
        copies older than the previous one and the legacy files (the collection's lock held)."""
        before = col.read_state(self.folder)
        name = self.copies.publish(order, [texts[i] for i in order]) if self.hybrid else None
        col.write_json(self.folder, col.STATE, {"shard_versions": shard_versions, "bm25": name})
        self.copies.collect({name, before and before.get("bm25")} - {None})
        shutil.rmtree(self.folder / col.LEGACY_BM25, ignore_errors=True)
        (self.folder / col.LEGACY_IDS).unlink(missing_ok=True)


def insertion_order(previous: list[str], present: list[str], written: list[str]) -> list[str]:
    """The collection's order after a write of ``written`` ids: ``previous`` without ids gone or
    rewritten, then the ``written`` ids still present, then present ids no order knew (left by a
    write killed half way), in ``present``'s order."""
    here, touched = set(present), set(written)
    order = [i for i in previous if i in here and i not in touched] + [i for i in written if i in here]
    listed = set(order)
    return order + [i for i in present if i not in listed]
