"""The PLAID codec a sharded collection's shards share (``codec.npz``): trained once — on a seeded
sample by a Ray build, or on the first write's vectors — and adopted by every shard, which never
retrains it, so scores from different shards are comparable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maxsim.distributed import collection as col
from maxsim.index.codec import ResidualCodec
from maxsim.index.storage import fsync_dir

CODEC_KEYS = ("nbits", "n_centroids", "kmeans_niters", "max_points_per_centroid", "seed")


class SharedCodec:
    """The shared codec of the collection in ``folder``."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / col.CODEC

    def shard_params(self, kind: str, index_params: dict) -> dict:
        """The index parameters of a new shard: a PLAID shard adopts the shared codec when it exists
        (else ``share`` hands it over once trained)."""
        if kind == "plaid" and self.path.exists():
            return {**index_params, "codec": ResidualCodec.load_file(self.path)}
        return dict(index_params)

    def ensure(self, manifest: dict, vectors: list[np.ndarray], n_tokens_total: int | None = None):
        """The shared codec (None when the collection is not PLAID): loaded, or trained and saved from
        ``vectors`` (one (n, dim) array per passage); ``n_tokens_total``: the collection's expected
        size in tokens."""
        if manifest["kind"] != "plaid":
            return None
        if self.path.exists():
            return ResidualCodec.load_file(self.path)
        from maxsim.index import PlaidIndex

        x = np.concatenate(vectors)
        params = {key: value for key, value in manifest["index_params"].items() if key in CODEC_KEYS}
        codec = PlaidIndex.train_codec(x, n_tokens_total or len(x), **params)
        self.save(codec)
        return codec

    def save(self, codec: ResidualCodec) -> None:
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        codec.save_file(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)


def adopt_codec(retriever, codec: ResidualCodec) -> bool:
    """A PLAID shard adopts the shared ``codec`` before its first add (nothing to do, no commit,
    when it already has)."""
    with retriever.versions.reading() as (_, index):
        if index.shares_codec:
            return False
    with retriever.versions.writing(retriever.lock_timeout) as (_, index):
        return index.adopt_codec(codec)
