"""Shards kept in Ray actors (``maxsim serve DIR --ray``): each shard's index and texts live in the
memory of the node its actor runs on, so a collection larger than one machine's memory is served.
The actors are named after the collection folder and shard, so every ``ShardedRetriever`` of one
collection on the cluster (one per reader thread of the service) shares them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from maxsim.distributed.encode import connect


class ShardActor:
    """A shard's ``Retriever`` inside a Ray actor (its model loaded from ``model``, the collection's);
    ``call`` runs one of the calls a shard answers (``shards.run``)."""

    def __init__(self, folder: str, model: str, device: str | None, dtype: str | None):
        from maxsim.models.loading import load_model
        from maxsim.search import Retriever

        self.retriever = Retriever.open(folder, model=load_model(model, device, dtype))

    def call(self, method: str, args: tuple, kwargs: dict):
        from maxsim.distributed.shards import run

        return run(method, self.retriever, args, kwargs)


class RayShards:
    """The shards of ``folder`` as Ray actors (created once per cluster, then shared)."""

    def __init__(self, folder: Path, body: dict, model: str, address: str, device: str | None, dtype: str | None):
        self.ray = connect(None if address == "local" else address)
        actor = self.ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(ShardActor)
        tag = hashlib.blake2b(str(Path(folder).resolve()).encode(), digest_size=8).hexdigest()
        self.actors = [actor.options(name=f"maxsim-{tag}-{name}", get_if_exists=True)
                       .remote(str(Path(folder) / name), model, device, dtype) for name in body["shard_folders"]]

    def __len__(self) -> int:
        return len(self.actors)

    def call(self, method: str, calls: list[tuple[int, tuple, dict]]) -> list:
        """As ``LocalShards.call``, on the actors; a shard's error is raised as itself."""
        refs = [self.actors[i].call.remote(method, args, kwargs) for i, args, kwargs in calls]
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as error:
            raise (error.cause if isinstance(error.cause, Exception) else error) from None

    def close(self) -> None:
        """The actors stay for the collection's other readers; they end with this Ray job."""
