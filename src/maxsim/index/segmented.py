"""Segmented storage common to ExactIndex and PlaidIndex: ids, metadata, tombstones, commits.

An index is a list of immutable segments (``maxsim.index.segment``: one per ``add``, merged by
compaction).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from maxsim.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from maxsim.index.base import Index, Scored
from maxsim.index.checks import check_embeddings, check_ids, check_k, check_queries
from maxsim.index.params import IndexParams
from maxsim.index.segment import Segment, write_segment
from maxsim.index.storage import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    CorruptedError,
    FileWriter,
    FolderManifest,
    Manifest,
    check_files,
    check_new_files,
    new_tag,
    verify_env,
    writer_lock,
)

MAX_OPEN_RETRIES = 8


def upgrade(body: dict) -> dict:
    """A committed body of an older format as this format reads it (format 1: the PLAID ``codec``
    path parameter, used only before the first add, is dropped)."""
    if body.get("format_version", 1) >= FORMAT_VERSION:
        return body
    params = {k: v for k, v in body["params"].items() if k != "codec"}
    return {**body, "params": params}


class SegmentedIndex(Index):
    """Shared implementation; subclasses define the token arrays and the search."""

    kind = ""
    params_class: type[IndexParams] = IndexParams
    segment_arrays: tuple[str, ...] = ()

    # ------------------------------------------------------------------ lifecycle
    def __init__(self, folder: Path, body: dict, lock_timeout: float = 60.0, manifest=None,
                 segment_cache: dict | None = None):
        """``manifest``: where changes commit (default ``FolderManifest``: this folder's manifest.json).
        ``segment_cache``: loaded segments that all views of the same folder use (kept, not pruned)."""
        self.folder = Path(folder)
        self.lock_timeout = lock_timeout
        self.manifest = manifest if manifest is not None else FolderManifest(self.folder, lock_timeout)
        self._shared_cache = segment_cache is not None
        self._segment_cache: dict[str, Segment] = segment_cache if segment_cache is not None else {}
        self._load_state(body)

    @classmethod
    def new_body(cls, dim: int, **params) -> dict:
        """The committed state of an empty index (``params``: the fields of ``params_class``,
        checked), for ``create`` or an owner (a retriever folder)."""
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim <= 0:
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}.")
        typed = cls.params_class.from_dict(params)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": cls.kind, "version": 1,
                "dim": int(dim), "params": typed.to_dict(), "state": {}, "segments": [], "files": {},
                "counts": {"documents": 0, "tokens": 0, "deleted": 0, "segments": 0}}

    @classmethod
    def create(cls, folder, dim: int, lock_timeout: float = 60.0, codec=None, **params):
        """A new empty index in ``folder`` (``params``: the fields of ``params_class``); ``codec``:
        a trained codec to adopt (``with_codec``)."""
        folder = Path(folder)
        body = cls.new_body(dim, **params)
        folder.mkdir(parents=True, exist_ok=True)
        with writer_lock(folder, lock_timeout):
            if (folder / MANIFEST).exists():
                raise AlreadyExistsError(f"{folder} already holds an index; open it with open_index().")
            if codec is not None:
                body = cls.with_codec(body, folder, codec)
            Manifest.commit(folder, body)
        return cls(folder, body, lock_timeout)

    @classmethod
    def with_codec(cls, body: dict, folder: Path, codec) -> dict:
        """``body`` of an empty index adopting a trained ``codec`` (its files written into ``folder``)."""
        raise InvalidInputError(f"a {cls.kind!r} index has no codec to adopt.")

    @classmethod
    def open(cls, folder, verify: bool | None = None, lock_timeout: float = 60.0):
        """The last committed state of ``folder``; ``verify``: check every file in full first
        (default: the environment variable ``MAXSIM_INDEX_VERIFY=1``)."""
        folder = Path(folder)
        for attempt in range(MAX_OPEN_RETRIES):
            body = Manifest.read(folder)
            if cls.kind and body["kind"] != cls.kind:
                raise InvalidInputError(f"{folder} holds a {body['kind']!r} index, not {cls.kind!r}; use open_index().")
            try:
                if verify:
                    check_files(folder, body["files"], full=True)
                return cls(folder, body, lock_timeout)
            except (FileNotFoundError, CorruptedError):
                # a writer may have committed and collected the files of the manifest we read: retry
                if attempt + 1 < MAX_OPEN_RETRIES and Manifest.read(folder)["version"] != body["version"]:
                    continue
                raise
        raise AssertionError("unreachable")

    def refresh(self) -> bool:
        """Move to the newest committed state (another process may have written); True if it changed."""
        body = self.manifest.read()
        if body["version"] == self._body["version"]:
            return False
        self._load_state(body)
        return True

    def verify(self) -> None:
        """Full CRC-32 check of every file of the committed state (raises CorruptedError naming it)."""
        check_files(self.folder, self._body["files"], full=True)

    @property
    def dim(self) -> int:
        return self._body["dim"]

    @property
    def params(self):
        """The typed parameters (``maxsim.index.params``)."""
        return self._params

    @property
    def version(self) -> int:
        return self._body["version"]

    @property
    def segments(self) -> list[Segment]:
        """The loaded segments of the committed state."""
        return self._segments

    @property
    def files(self) -> dict[str, dict]:
        """The committed state's files: name -> {"bytes", "crc32"}."""
        return self._body["files"]

    def stats(self) -> dict:
        sizes = sum(v["bytes"] for v in self._body["files"].values())
        tokens = sum(s.n_tokens for s in self._segments)
        return {"kind": self.kind, "documents": len(self), "tokens": tokens, "segments": len(self._segments),
                "bytes": sizes, "bytes_per_token": sizes / tokens if tokens else 0.0, "version": self.version,
                "tiers": self.tier_bytes()}

    def tier_bytes(self) -> dict[str, int]:
        """Bytes on disk per tier of the committed state: ``ids`` (ids, metadata, document lengths,
        tombstones) and the kind's token arrays (``tier_of``)."""
        out: dict[str, int] = {}
        for seg in self._body["segments"]:
            for name, file in seg["files"].items():
                if file:
                    tier = self.tier_of.get(name, "ids")
                    out[tier] = out.get(tier, 0) + self._body["files"][file]["bytes"]
        return out

    tier_of: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r}, documents={len(self)}, dim={self.dim})"

    # ------------------------------------------------------------------ state
    def _load_state(self, body: dict) -> None:
        body = upgrade(body)
        check_files(self.folder, body["files"])
        if verify_env():
            check_new_files(self.folder, body["files"])
        self._params = self.params_class.from_dict(body["params"])
        self._load_shared(body)
        segments, cache = [], {}
        for entry in body["segments"]:
            key = json.dumps(entry, sort_keys=True)
            seg = self._segment_cache.get(key)
            if seg is None:
                seg = Segment(self.folder, entry, body["dim"])
                self._load_segment_arrays(seg, body)
            cache[key] = seg
            segments.append(seg)
        if self._shared_cache:
            self._segment_cache.update(cache)
        else:
            self._segment_cache = cache
        self._segments = segments
        self._body = body
        self._bases = np.zeros(len(segments) + 1, dtype=np.int64)
        np.cumsum([s.n_docs for s in segments], out=self._bases[1:])
        self._pos: dict[str, int] = {}
        for si, seg in enumerate(segments):
            base = int(self._bases[si])
            for j, doc_id in enumerate(seg.ids):
                if not seg.dead[j]:
                    self._pos[doc_id] = base + j
        self._alive = np.concatenate([~s.dead for s in segments]) if segments else np.zeros(0, dtype=bool)

    def _load_shared(self, body: dict) -> None:
        """Subclass hook: load files shared by all segments."""

    def _load_segment_arrays(self, seg: Segment, body: dict) -> None:
        seg.load_arrays(self.segment_arrays, body["files"])
        self._check_segment(seg, body)

    def _check_segment(self, seg: Segment, body: dict) -> None:
        """Subclass hook: validate array shapes / ranges (raise CorruptedError naming the file)."""

    def _locate(self, global_doc: int) -> tuple[Segment, int]:
        si = int(np.searchsorted(self._bases, global_doc, side="right")) - 1
        return self._segments[si], int(global_doc - self._bases[si])

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self._pos

    def ids(self) -> list[str]:
        return [doc_id for seg in self._segments for doc_id, dead in zip(seg.ids, seg.dead) if not dead]

    def metadata(self, doc_id: str):
        seg, local = self._locate(self._position(doc_id))
        return seg.metadata[local]

    def _position(self, doc_id) -> int:
        try:
            return self._pos[doc_id]
        except (KeyError, TypeError):
            raise NotFoundError(f"no document with id {doc_id!r} in the index {self.folder}.") from None

    def get_embeddings(self, ids: Sequence[str]) -> list[np.ndarray]:
        if isinstance(ids, str):
            raise InvalidInputError("get_embeddings takes a list of ids, not one string.")
        out = []
        for doc_id in ids:
            seg, local = self._locate(self._position(doc_id))
            out.append(self._doc_vectors(seg, np.array([local]))[0])
        return out

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def _max_abs_value(self) -> float | None:
        """Largest absolute value the storage dtype holds (None: no limit)."""
        return None

    def _subset_mask(self, subset) -> np.ndarray:
        alive = self._alive.copy()
        if subset is None:
            return alive
        subset = list(subset) if not isinstance(subset, str) else None
        if subset is None:
            raise InvalidInputError("subset must be a list of ids, not one string.")
        mask = np.zeros_like(alive)
        unknown = [s for s in subset if s not in self._pos]
        if unknown:
            raise NotFoundError(f"subset holds {len(unknown)} unknown id(s), e.g. {unknown[:3]}.")
        mask[[self._pos[s] for s in subset]] = True
        return mask

    # ------------------------------------------------------------------ search
    def search(self, query_embeddings, k: int = 10, subset=None, **options) -> list[list[Scored]]:
        k = check_k(k)
        queries = check_queries(query_embeddings, self.dim)
        if not queries:
            return []
        mask = self._subset_mask(subset)
        if not mask.any():
            return [[] for _ in queries]
        results = self._search(queries, k, mask, **options)
        out = []
        for docs, scores in results:
            hits = []
            for g, s in zip(docs.tolist(), scores.tolist()):
                seg, local = self._locate(g)
                hits.append((seg.ids[local], float(s)))
            out.append(hits)
        return out

    def _search(self, queries: list[np.ndarray], k: int, mask: np.ndarray, **options):
        """-> per query (global doc positions, scores), best first, ties by lower position."""
        raise NotImplementedError

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _writing(self):
        with self.manifest.lock():
            body = self.manifest.read()
            if body["version"] != self._body["version"]:
                self._load_state(body)  # another writer committed since we loaded
            yield

    def _commit(self, body: dict, writer: FileWriter | None) -> None:
        if writer is not None:
            writer.sync()
        referenced = set()
        for seg in body["segments"]:
            referenced.update(v for v in seg["files"].values() if v)
        referenced.update(v for v in body.get("shared_files", {}).values() if v)
        known = {**self._body["files"], **(writer.written if writer else {})}
        missing = referenced - set(known)
        if missing:
            raise AssertionError(f"commit references unwritten files {sorted(missing)}")
        body["files"] = {name: known[name] for name in sorted(referenced)}
        body["version"], body["format_version"] = self._body["version"] + 1, FORMAT_VERSION
        n_docs = sum(s["n_docs"] for s in body["segments"])
        dead = sum(s.get("n_deleted", 0) for s in body["segments"])
        body["counts"] = {"documents": n_docs - dead, "tokens": sum(s["n_tokens"] for s in body["segments"]),
                          "deleted": dead, "segments": len(body["segments"])}
        self.manifest.commit(body)
        self._load_state(body)

    def _new_body(self) -> dict:
        return json.loads(json.dumps(self._body))

    def add(self, ids, embeddings, metadata=None) -> None:
        ids = check_ids(ids)
        embeddings = check_embeddings(ids, embeddings, self.dim, self._max_abs_value())
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != len(ids):
                raise InvalidInputError(f"got {len(ids)} ids but {len(metadata)} metadata entries.")
            for doc_id, m in zip(ids, metadata):
                try:
                    json.dumps(m, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    raise InvalidInputError(f"metadata of id {doc_id!r} is not JSON-serialisable: {exc}") from None
        if not ids:
            return
        with self._writing():
            present = [doc_id for doc_id in ids if doc_id in self._pos]
            if present:
                raise InvalidInputError(f"{len(present)} id(s) already in the index, e.g. {present[:3]}; "
                                 "remove them first to replace them.")
            writer = FileWriter(self.folder)
            body = self._new_body()
            doclens = np.array([e.shape[0] for e in embeddings], dtype=np.int64)
            arrays = self._prepare_add(body, writer, embeddings, doclens)
            body["segments"].append(write_segment(writer, ids, metadata, doclens, arrays))
            self._maybe_merge(body, writer)
            self._commit(body, writer)

    def _prepare_add(self, body: dict, writer: FileWriter, embeddings: list[np.ndarray],
                     doclens: np.ndarray) -> dict[str, np.ndarray]:
        """Subclass hook: the token arrays of a new segment (may update body state, e.g. retrain)."""
        raise NotImplementedError

    def remove(self, ids) -> None:
        ids = check_ids(ids)
        if not ids:
            return
        with self._writing():
            unknown = [doc_id for doc_id in ids if doc_id not in self._pos]
            if unknown:
                raise NotFoundError(f"{len(unknown)} id(s) not in the index, e.g. {unknown[:3]}; nothing was removed.")
            body = self._new_body()
            writer = FileWriter(self.folder)
            by_segment: dict[int, list[int]] = {}
            for doc_id in ids:
                g = self._pos[doc_id]
                si = int(np.searchsorted(self._bases, g, side="right")) - 1
                by_segment.setdefault(si, []).append(int(g - self._bases[si]))
            for si, locals_ in by_segment.items():
                seg = self._segments[si]
                dead = seg.dead.copy()
                dead[locals_] = True
                entry = body["segments"][si]
                entry["n_deleted"] = int(dead.sum())
                entry["files"]["tombstones"] = writer.array(f"seg-{entry['tag']}-tomb-{new_tag()}.npy",
                                                            np.nonzero(dead)[0].astype(np.int64))
            self._compact_segments(body, writer, [si for si in by_segment
                                                  if body["segments"][si]["n_deleted"]
                                                  > self.compact_fraction * body["segments"][si]["n_docs"]])
            self._commit(body, writer)

    compact_fraction = 0.25
    max_segments = 16

    def compact(self) -> None:
        """Rewrite every segment holding deleted documents and merge all segments into one."""
        with self._writing():
            body = self._new_body()
            writer = FileWriter(self.folder)
            if len(body["segments"]) > 1 or any(s.get("n_deleted") for s in body["segments"]):
                self._merge_range(body, writer, 0, len(body["segments"]))
                self._commit(body, writer)

    def _compact_segments(self, body: dict, writer: FileWriter, indices: list[int]) -> None:
        for si in sorted(indices, reverse=True):
            self._merge_range(body, writer, si, si + 1)

    def _maybe_merge(self, body: dict, writer: FileWriter) -> None:
        """Keep the segment count bounded: merge the adjacent pair with the fewest documents."""
        while len(body["segments"]) > self.max_segments:
            sizes = [s["n_docs"] - s.get("n_deleted", 0) for s in body["segments"]]
            i = min(range(len(sizes) - 1), key=lambda j: sizes[j] + sizes[j + 1])
            self._merge_range(body, writer, i, i + 2)

    def _segment_for_entry(self, body: dict, entry: dict, writer: FileWriter) -> Segment:
        """A loaded Segment for a manifest entry that may have been written during this change."""
        key = json.dumps(entry, sort_keys=True)
        seg = self._segment_cache.get(key)
        if seg is None:
            seg = Segment(self.folder, entry, body["dim"])
            seg.load_arrays(self.segment_arrays, {**self._body["files"], **writer.written})
        return seg

    def _merge_range(self, body: dict, writer: FileWriter, start: int, stop: int) -> None:
        """Replace segments [start, stop) by one segment of their live documents, in order."""
        entries = body["segments"][start:stop]
        segs = [self._segment_for_entry(body, e, writer) for e in entries]
        ids, meta, doclens, parts = [], [], [], []
        for seg in segs:
            keep, seg_ids, seg_meta, lens = seg.live()
            ids += seg_ids
            meta += seg_meta
            doclens.append(lens)
            parts.append((seg, keep))
        doclens = np.concatenate(doclens) if doclens else np.zeros(0, dtype=np.int64)
        new = []
        if ids:
            arrays = self._merge_arrays(body, parts, doclens)
            new = [write_segment(writer, ids, meta, doclens, arrays)]
        body["segments"][start:stop] = new

    def _merge_arrays(self, body: dict, parts: list[tuple[Segment, np.ndarray]], doclens: np.ndarray) -> dict:
        raise NotImplementedError
