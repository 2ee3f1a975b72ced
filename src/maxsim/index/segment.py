"""One segment of an index: its files, written once (``write_segment``) and loaded (``Segment``).

A segment holds ``ids.json``, optional ``meta.json``, ``doclens.npy`` and the kind's token arrays;
deletions are a per-segment ``tomb`` array of local positions, replaced (never edited) on each
``remove``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maxsim.errors import CorruptedError
from maxsim.index.storage import FileWriter, load_array, load_json, new_tag, open_array


def write_segment(writer: FileWriter, ids: list[str], metadata: list | None, doclens: np.ndarray,
                  arrays: dict[str, np.ndarray]) -> dict:
    """Write the files of a new segment -> its manifest entry (``meta.json`` only when some metadata is set)."""
    tag = new_tag()
    files = {"ids": writer.json(f"seg-{tag}-ids.json", ids),
             "metadata": writer.json(f"seg-{tag}-meta.json", metadata)
             if metadata is not None and any(m is not None for m in metadata) else None,
             "doclens": writer.array(f"seg-{tag}-doclens.npy", np.asarray(doclens, dtype=np.int32)),
             "tombstones": None}
    for name, arr in arrays.items():
        files[name] = writer.array(f"seg-{tag}-{name}.npy", arr)
    return {"tag": tag, "n_docs": len(ids), "n_tokens": int(np.sum(doclens)), "n_deleted": 0, "files": files}


class Segment:
    """One committed segment, loaded: ids, metadata, doc lengths/offsets, deletion mask, arrays."""

    def __init__(self, folder: Path, entry: dict, dim: int):
        self.entry = entry
        files = entry["files"]
        self.n_docs, self.n_tokens = int(entry["n_docs"]), int(entry["n_tokens"])
        self.ids = load_json(folder, files["ids"])
        if not isinstance(self.ids, list) or len(self.ids) != self.n_docs:
            raise CorruptedError(f"{folder / files['ids']}: expected a list of {self.n_docs} ids.")
        self.meta_file = files.get("metadata")
        self._metadata = None
        self.folder = folder
        doclens = np.asarray(load_array(folder, files["doclens"], mmap=False), dtype=np.int64)
        if doclens.shape != (self.n_docs,) or (doclens < 0).any() or int(doclens.sum()) != self.n_tokens:
            raise CorruptedError(f"{folder / files['doclens']}: document lengths do not match the manifest "
                                      f"({self.n_docs} documents, {self.n_tokens} tokens).")
        self.doclens = doclens
        self.offsets = np.zeros(self.n_docs + 1, dtype=np.int64)
        np.cumsum(doclens, out=self.offsets[1:])
        self.dead = np.zeros(self.n_docs, dtype=bool)
        if files.get("tombstones"):
            tomb = np.asarray(load_array(folder, files["tombstones"], mmap=False))
            if tomb.ndim != 1 or (tomb.size and (tomb.min() < 0 or tomb.max() >= self.n_docs)):
                raise CorruptedError(f"{folder / files['tombstones']}: positions out of range.")
            self.dead[tomb] = True
        self.arrays: dict[str, np.ndarray] = {}

    def load_arrays(self, names: tuple[str, ...], files: dict[str, dict]) -> None:
        """Memory-map the token arrays ``names`` into ``arrays`` (``files``: the manifest's file
        records; large files are checked block by block as they are read, ``storage.open_array``)."""
        for name in names:
            if self.entry["files"].get(name):
                file = self.entry["files"][name]
                self.arrays[name] = open_array(self.folder, file, files[file])

    @property
    def metadata(self) -> list:
        if self._metadata is None:
            if self.meta_file:
                meta = load_json(self.folder, self.meta_file)
                if not isinstance(meta, list) or len(meta) != self.n_docs:
                    raise CorruptedError(f"{self.folder / self.meta_file}: expected {self.n_docs} entries.")
                self._metadata = meta
            else:
                self._metadata = [None] * self.n_docs
        return self._metadata

    @property
    def n_live(self) -> int:
        return self.n_docs - int(self.dead.sum())

    def live(self) -> tuple[np.ndarray, list, list, np.ndarray]:
        """Local positions, ids, metadata and lengths of the documents not deleted."""
        keep = np.nonzero(~self.dead)[0]
        meta = self.metadata
        return keep, [self.ids[j] for j in keep], [meta[j] for j in keep], self.doclens[keep]
