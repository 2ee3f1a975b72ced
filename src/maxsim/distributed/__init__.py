"""Scale-out on Ray: build a collection as shards in parallel, search the shards as one collection.

``build_collection(input, output, ...)`` encodes on a Ray cluster into a sharded collection;
``ShardedRetriever.open(folder)`` (what ``Retriever.open`` returns for such a folder) searches it.
See docs/scale.md.
"""

from maxsim.distributed.build import build_collection
from maxsim.distributed.collection import is_collection, shard_of
from maxsim.distributed.sharded import ShardedRetriever, serve_shards_on_ray

__all__ = ["ShardedRetriever", "build_collection", "is_collection", "serve_shards_on_ray", "shard_of"]
