"""Scale-out: a collection as shards, written and searched as one, built in parallel on Ray.

``ShardedRetriever`` (what ``maxsim.open`` returns for a sharded collection folder) searches and
writes it with its shards in this process or in Ray actors; ``build_collection`` encodes files on a
Ray cluster into a new one. See docs/scale.md.
"""

from maxsim.distributed.build import build_collection
from maxsim.distributed.collection import is_collection, shard_of
from maxsim.distributed.sharded import ShardedRetriever

__all__ = ["ShardedRetriever", "build_collection", "is_collection", "shard_of"]
