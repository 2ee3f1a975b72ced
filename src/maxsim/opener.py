"""``maxsim.open``: the one way to open a collection folder, whatever it holds.

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
