"""One committed segment of an index, loaded from its files and checked against the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maxsim.index.storage import IndexCorruptedError, load_array, load_json


class Segment:
    """One committed segment, loaded: ids, metadata, doc lengths/offsets, deletion mask, arrays."""

    def __init__(self, folder: Path, entry: dict, dim: int):
        self.entry = entry
        files = entry["files"]
        self.n_docs, self.n_tokens = int(entry["n_docs"]), int(entry["n_tokens"])
        self.ids = load_json(folder, files["ids"])
        if not isinstance(self.ids, list) or len(self.ids) != self.n_docs:
            raise IndexCorruptedError(f"{folder / files['ids']}: expected a list of {self.n_docs} ids.")
        self.meta_file = files.get("metadata")
        self._metadata = None
        self.folder = folder
        doclens = np.asarray(load_array(folder, files["doclens"], mmap=False), dtype=np.int64)
        if doclens.shape != (self.n_docs,) or (doclens < 0).any() or int(doclens.sum()) != self.n_tokens:
            raise IndexCorruptedError(f"{folder / files['doclens']}: document lengths do not match the manifest "
                                      f"({self.n_docs} documents, {self.n_tokens} tokens).")
        self.doclens = doclens
        self.offsets = np.zeros(self.n_docs + 1, dtype=np.int64)
        np.cumsum(doclens, out=self.offsets[1:])
        self.dead = np.zeros(self.n_docs, dtype=bool)
        if files.get("tombstones"):
            tomb = np.asarray(load_array(folder, files["tombstones"], mmap=False))
            if tomb.ndim != 1 or (tomb.size and (tomb.min() < 0 or tomb.max() >= self.n_docs)):
                raise IndexCorruptedError(f"{folder / files['tombstones']}: positions out of range.")
            self.dead[tomb] = True
        self.arrays: dict[str, np.ndarray] = {}

    @property
    def metadata(self) -> list:
        if self._metadata is None:
            if self.meta_file:
                meta = load_json(self.folder, self.meta_file)
                if not isinstance(meta, list) or len(meta) != self.n_docs:
                    raise IndexCorruptedError(f"{self.folder / self.meta_file}: expected {self.n_docs} entries.")
                self._metadata = meta
            else:
                self._metadata = [None] * self.n_docs
        return self._metadata

    @property
    def n_live(self) -> int:
        return self.n_docs - int(self.dead.sum())
