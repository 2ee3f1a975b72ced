"""``maxsim.open``: the one way to open a collection folder, whatever it holds (and to check and
repair one: ``check``, ``repair``).

A retriever folder (``retriever.json``) opens as a ``Retriever``, a sharded collection
(``collection.json``) as a ``ShardedRetriever``; both are a ``maxsim.search.collection.Collection``.
The command line, the service, the MCP server, the integrations and evaluation open folders here.
"""

from __future__ import annotations

from pathlib import Path

from maxsim.distributed.collection import is_collection
from maxsim.errors import InvalidInputError
from maxsim.search.collection import Collection


def open_collection(path: str | Path, model=None, device: str | None = None, dtype: str | None = None,
                    ray_address: str | None = None) -> Collection:
    """The collection in ``path``. ``model``: a loaded encoder to use instead of the one the folder
    names (loaded on first use otherwise); ``device``, ``dtype``: how to load that one.
    ``ray_address`` ("local", "auto" or a cluster address): keep a sharded collection's shards in
    Ray actors there (a retriever folder has no shards: refused)."""
    path = Path(path)
    if is_collection(path):
        from maxsim.distributed.sharded import ShardedRetriever

        return ShardedRetriever.open(path, model=model, device=device, dtype=dtype, ray_address=ray_address)
    if ray_address:
        raise InvalidInputError(f"{path} is a retriever folder, not a sharded collection: open it without Ray "
                                "(drop --ray), or build a sharded one with `maxsim index ... --ray`.")
    from maxsim.search.retriever import Retriever

    return Retriever.open(path, model=model, device=device, dtype=dtype)


def check(path: str | Path) -> list:
    """Every problem (``maxsim.search.check.Finding``) of the collection at ``path``, a retriever
    folder or a sharded collection."""
    from maxsim.distributed.check import check_collection
    from maxsim.search.check import check_folder

    path = Path(path)
    return check_collection(path) if is_collection(path) else check_folder(path)


def repair(path: str | Path) -> list[str]:
    """Rebuild what can be rebuilt at ``path``; returns what was rebuilt (``CorruptedError`` when the
    damage is in what a rebuild needs)."""
    from maxsim.distributed.check import repair_collection
    from maxsim.search.check import repair_folder

    path = Path(path)
    return repair_collection(path) if is_collection(path) else repair_folder(path)
