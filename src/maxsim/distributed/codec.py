"""The PLAID codec a sharded collection's shards share (``codec.npz``): trained once — on a seeded
sample by a Ray build, or on the first write's vectors — and adopted by every shard, which never
retrains it, so scores from different shards are comparable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maxsim.distributed import collection as col
from maxsim.index.storage import fsync_dir

CODEC_KEYS = ("nbits", "n_centroids", "kmeans_niters", "max_points_per_centroid", "seed")


class SharedCodec:
    """The shared codec of the collection in ``folder``."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / col.CODEC

    def shard_params(self, kind: str, index_params: dict) -> dict:
        """The index parameters of each shard: PLAID shards adopt the shared codec."""
        return {**index_params, "codec": str(self.path.resolve())} if kind == "plaid" else dict(index_params)

    def ensure(self, manifest: dict, vectors: list[np.ndarray], n_tokens_total: int | None = None) -> None:
        """Train and save the codec from ``vectors`` (one (n, dim) array per passage) unless it exists
        or the collection is not PLAID; ``n_tokens_total``: the collection's expected size in tokens."""
        if manifest["kind"] != "plaid" or self.path.exists():
            return
        from maxsim.index import PlaidIndex

        x = np.concatenate(vectors)
        params = {key: value for key, value in manifest["index_params"].items() if key in CODEC_KEYS}
        self.save(PlaidIndex.train_codec(x, n_tokens_total or len(x), **params))

    def save(self, arrays: dict[str, np.ndarray]) -> None:
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
