"""Scale-out: a collection as shards, written and searched as one, built in parallel on Ray.

``ShardedRetriever`` (what ``maxsim.open`` returns for a sharded collection folder) searches and
writes it with its shards in this process or in Ray actors; ``build_collection`` encodes files on a
Ray cluster into a new one. See docs/scale.md. Exports are imported on first use (``maxsim.open``
reads ``maxsim.distributed.collection`` without loading the build's dependencies).
"""

from maxsim.lazy import lazy_exports

_EXPORTS = {"build_collection": "maxsim.distributed.build", "is_collection": "maxsim.distributed.collection",
            "shard_of": "maxsim.distributed.collection", "ShardedRetriever": "maxsim.distributed.sharded"}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
