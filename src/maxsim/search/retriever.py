"""Retriever: a model, an index, the documents and (optionally) BM25, as one versioned folder.

Layout of a retriever folder::

    retriever.json     settings written once by create: format, model, dim, index kind, hybrid,
                       passages, pool factor
    state.sqlite3      the one owner of ids and versions (see ``store``): documents, passages,
                       metadata fields and the commits (version -> index state, BM25 copy)
    index/             the index's immutable segment files (it commits through the store)
    bm25/<name>/       one BM25 copy per recent version, when hybrid
    model/             a copy of the model, only when it was given without a name
    LOCK               the folder's writer lock (flock; holds the writer's pid)

A change (add, upsert, remove) encodes first, then takes the lock and writes the new segment files
and BM25 copy under fresh names, and commits version N+1 as one SQLite transaction; a process killed
at any point leaves version N whole. A read sees one version from start to end (see ``store``).
A second writer waits for the lock up to ``lock_timeout`` seconds, then gets ``LockedError`` naming
the process holding it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from maxsim.errors import AlreadyExistsError, CorruptedError, InvalidInputError, NotFoundError
from maxsim.index import KINDS
from maxsim.index.checks import check_k
from maxsim.index.storage import MANAGED_PREFIXES, FileWriter, check_sizes, writer_lock
from maxsim.models.loading import load_model
from maxsim.search.bm25 import BM25Versions
from maxsim.search.fusion import FUSION_DEPTH, METHODS, fuse
from maxsim.search.inputs import check_ids, check_metadata, check_queries, check_texts
from maxsim.search.passages import Encoder, best_passages, explain_passage, rank_documents
from maxsim.search.store import FILE, StateStore

MANIFEST = "retriever.json"
COLLECTION = "collection.json"
FORMAT = "maxsim-retriever"
FORMAT_VERSION = 2
SAVED_MODEL = "model"
KEEP_VERSIONS = 2  # index files and BM25 copies of this many recent versions stay on disk


class Retriever:
    """Search a collection of documents with a multi-vector model (MaxSim), optionally fused with
    BM25. Build one with ``Retriever.create`` and reopen it with ``Retriever.open``. Read methods
    are thread-safe; other processes' commits are seen by the next read."""

    lock_timeout = 600.0

    def __init__(self, folder: str | Path, model, manifest: dict, store: StateStore, load=None):
        """``model``: the encoder, or None with ``load``: a callable that loads it on first use
        (so ``get``, ``remove``, ``len`` and ``stats`` never load a model)."""
        self.folder, self.manifest, self.store = Path(folder), manifest, store
        self._model, self._load, self._model_lock = model, load, threading.Lock()
        self._kind = KINDS[manifest["index"]]
        self._segments: dict = {}
        self._views: OrderedDict[int, object] = OrderedDict()
        self._views_lock = threading.Lock()
        self.bm25 = BM25Versions(self.folder / "bm25") if manifest["hybrid"] else None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path, model=None, index: str = "exact", hybrid: bool = True,
               model_name: str | None = None, device: str | None = None, dtype: str | None = None,
               passages: bool | dict = True, pool_factor: int = 1, **index_params) -> Retriever:
        """Create an empty retriever in ``folder`` (new or empty).

        ``model``: a ``MultiVectorEncoder``, or None to load ``model_name`` ("default", a folder or
        a hub id; default "default"). A model given without ``model_name`` is saved into the folder.
        ``index``: "exact" or "plaid"; ``index_params`` go to it. ``hybrid``: keep BM25 too.
        ``passages``: split documents longer than the model's document length into passages (True,
        or ``{"overlap": tokens, "max_tokens": tokens}``); False truncates them (with a warning).
        ``pool_factor``: keep about 1/pool_factor of each passage's token vectors (token pooling).
        ``codec`` (in ``index_params``, PLAID): a trained ``ResidualCodec`` the index adopts.
        """
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise AlreadyExistsError(f"{folder} is not empty: open it with Retriever.open, or pick a new folder.")
        if index not in KINDS:
            raise InvalidInputError(f"index must be one of {sorted(KINDS)}, got {index!r}.")
        if model is None:
            model_name = model_name or "default"
            model = load_model(model_name, device, dtype)
        codec = index_params.pop("codec", None)
        body = KINDS[index].new_body(model.dim, **index_params)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model_name, "dim": model.dim,
                    "index": index, "hybrid": bool(hybrid),
                    "passages": Encoder.passage_settings(model, passages), "pool_factor": Encoder.check_pool(pool_factor)}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index").mkdir()
        if codec is not None:
            body = KINDS[index].with_codec(body, folder / "index", codec)
        if model_name is None:
            model.save(folder / SAVED_MODEL)
            manifest["model"] = SAVED_MODEL
        elif model_name != "default" and Path(model_name).exists():
            manifest["model"] = str(Path(model_name).resolve())
        store = StateStore(folder / FILE, create=True)
        bm25 = BM25Versions(folder / "bm25").publish([], []) if hybrid else None
        store.initialize(body, bm25, time.time())
        writer = FileWriter(folder)
        writer.json(MANIFEST, manifest)  # written last: a folder without it is an interrupted create
        writer.sync()
        return cls(folder, model, manifest, store)

    @classmethod
    def open(cls, folder: str | Path, model=None, device: str | None = None, dtype: str | None = None):
        """Open a retriever folder (or a sharded collection); ``model=None`` loads the one it names."""
        folder = Path(folder)
        if (folder / COLLECTION).is_file():
            from maxsim.distributed import ShardedRetriever

            return ShardedRetriever.open(folder, model=model, device=device, dtype=dtype)
        manifest = read_manifest(folder)
        store = StateStore(folder / FILE)
        name = manifest["model"]
        retriever = cls(folder, model, manifest, store,
                        lambda: load_model(str(folder / SAVED_MODEL) if name == SAVED_MODEL else name, device, dtype))
        if model is not None:
            retriever._check_dim(model)
        return retriever

    @property
    def model(self):
        """The encoder (loaded on first use when the folder was opened without one)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._check_dim(self._load())
        return self._model

    @property
    def _encoder(self) -> Encoder:
        return Encoder(lambda: self.model, self.manifest)

    def _check_dim(self, model):
        if model.dim != self.manifest["dim"]:
            raise InvalidInputError(f"the model gives {model.dim}-dim vectors but {self.folder} holds "
                                    f"{self.manifest['dim']}-dim ones: open it with the model it was built with "
                                    f"({self.manifest['model']!r}).")
        return model

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- versions ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self):
        """``(snapshot, index)`` of the newest committed version, held for the block."""
        for attempt in range(3):
            with self.store.read() as snap:
                try:
                    view = self._view(snap.version, snap.index_body)
                    check_sizes(view.folder, view.files)
                except (FileNotFoundError, CorruptedError):
                    if attempt == 2:  # not a race with a writer's clean-up: the files are damaged
                        raise
                    continue
                yield snap, view
                return

    def _view(self, version: int, body: dict):
        """The index at ``version`` (cached; views share loaded segments)."""
        with self._views_lock:
            view = self._views.get(version)
        if view is None:
            view = self._kind(self.folder / "index", body, manifest=_Staged(body), segment_cache=self._segments)
            with self._views_lock:
                self._views[version] = view
                while len(self._views) > KEEP_VERSIONS + 1:
                    self._views.popitem(last=False)
                live = {id(s) for v in self._views.values() for s in v.segments}
                for key in [k for k, s in self._segments.items() if id(s) not in live]:
                    del self._segments[key]
        return view

    @contextlib.contextmanager
    def _writing(self):
        """``(snapshot, index)`` to change; committed as version N+1 when the block ends."""
        with writer_lock(self.folder, self.lock_timeout):
            with self.store.write() as snap:
                staged = _Staged(snap.index_body)
                index = self._kind(self.folder / "index", staged.body, manifest=staged, segment_cache=self._segments)
                yield snap, index
                bm25 = self.bm25.publish(*snap.all_texts()) if self.bm25 is not None else None
                snap.commit_version(staged.body, bm25, time.time())
                snap.forget_commits(below=snap.version - KEEP_VERSIONS + 1)
            self._collect()

    def _collect(self) -> None:
        """Delete index files and BM25 copies that no kept version references (lock held)."""
        with self.store.read() as snap:
            kept = snap.recent_commits(KEEP_VERSIONS)
        files = {name for _, body, _ in kept for name in body["files"]}
        for entry in os.scandir(self.folder / "index"):
            if entry.name.startswith(MANAGED_PREFIXES) and entry.name not in files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        if self.bm25 is not None:
            self.bm25.collect({name for _, _, name in kept if name})

    @property
    def version(self) -> int:
        """The newest committed version."""
        with self.store.read() as snap:
            return snap.version

    @property
    def index(self):
        """The index at the newest committed version (read-only; passage keys as ids)."""
        with self.reading() as (_, view):
            return view

    # -- changes -----------------------------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None, metadata: Sequence[dict | None] | None = None,
            batch_size: int = 32, show_progress_bar: bool | None = None, embeddings=None) -> list[str]:
        """Encode and add documents; ``ids`` default to fresh unique strings; ``metadata[i]`` a JSON
        dict or None; ``embeddings``: precomputed (n_tokens, dim) arrays, one per text (then texts
        are not encoded nor split), or a ``maxsim.search.passages.Encoded`` (passages split and
        encoded elsewhere). Returns the ids. All or nothing: an id already present raises
        ``AlreadyExistsError`` and changes nothing."""
        return self._put(texts, ids, metadata, batch_size, show_progress_bar, embeddings, replace=False)

    def upsert(self, texts: Sequence[str], ids: Sequence[str], metadata: Sequence[dict | None] | None = None,
               batch_size: int = 32, show_progress_bar: bool | None = None, embeddings=None) -> list[str]:
        """Add documents, replacing (text, passages, vectors, metadata, BM25) those whose id exists,
        in one commit. Returns the ids."""
        if ids is None:
            raise InvalidInputError("upsert needs the ids of the documents to replace or add.")
        return self._put(texts, ids, metadata, batch_size, show_progress_bar, embeddings, replace=True)

    def _put(self, texts, ids, metadata, batch_size, show_progress_bar, embeddings, replace: bool) -> list[str]:
        texts = check_texts(texts)
        ids = [uuid.uuid4().hex for _ in texts] if ids is None else check_ids(ids, "ids")
        if len(ids) != len(texts):
            raise InvalidInputError(f"got {len(ids)} ids for {len(texts)} texts: pass one id per text.")
        metadata = check_metadata(metadata, len(texts))
        if not texts:
            return []
        with self.store.read() as snap:
            self._refuse_taken(snap, ids, replace)  # early, before encoding
        encoded = self._encoder.encode(texts, batch_size, show_progress_bar, embeddings)
        with self._writing() as (snap, index):
            present = self._refuse_taken(snap, ids, replace)
            if present:
                index.remove([str(key) for key in snap.delete(present)])
            keys = []
            for doc_id, text, meta, spans, n_tokens in zip(ids, texts, metadata, encoded.spans, encoded.tokens):
                keys += snap.insert(doc_id, text, meta, spans, n_tokens)
            index.add([str(key) for key in keys], encoded.vectors)
        return ids

    def _refuse_taken(self, snap, ids: list[str], replace: bool) -> list[str]:
        present = snap.present(ids)
        if present and not replace:
            raise AlreadyExistsError(f"id {present[0]!r} is already in {self.folder} ({len(present)} of the ids are): "
                                     "remove it first, upsert, or pick new ids.")
        return present

    def remove(self, ids: Sequence[str]) -> None:
        """Remove documents by id in one commit; an unknown id raises ``NotFoundError``, changing nothing."""
        ids = check_ids(ids, "ids")
        if not ids:
            return
        with self._writing() as (snap, index):
            snap.require(ids)
            index.remove([str(key) for key in snap.delete(ids)])

    # -- reads ---------------------------------------------------------------------------------
    def search(self, query: str | Sequence[str], k: int = 10, hybrid: bool = False, fusion: str = "rrf",
               filter: dict | None = None, subset: Sequence[str] | None = None) -> list[list[dict]]:
        """Per query, up to ``k`` documents ``{"id", "score", "text", "metadata", "passage"}`` best
        first (a single string still gives a list of one list). A document scores its best passage
        (MaxSim), or the fused score when ``hybrid`` (``fusion`` "rrf" or "score", each ranker
        contributing its top ``FUSION_DEPTH``). ``passage``: ``{"index", "start", "end", "text"}``,
        the best passage's ordinal and character span in ``text``. ``filter``: a metadata filter
        (``maxsim.search.filters``); ``subset``: restrict to these ids."""
        queries = check_queries(query)
        k = check_k(k)
        if hybrid and self.bm25 is None:
            raise InvalidInputError(f"{self.folder} keeps no BM25 index: create it with hybrid=True to search hybrid.")
        if fusion not in METHODS:
            raise InvalidInputError(f"fusion must be one of {METHODS}, got {fusion!r}.")
        subset = None if subset is None else check_ids(subset, "subset")
        q_vectors = self.model.encode_query(queries)
        with self.reading() as (snap, index):
            keys = self._candidates(snap, filter, subset)
            if len(index) == 0 or keys == []:
                return [[] for _ in queries]
            depth = max(k, FUSION_DEPTH) if hybrid else k
            dense = rank_documents(index, snap, q_vectors, depth, keys)
            ranked = [[(doc, score) for doc, score, _ in hits] for hits in dense]
            if hybrid:
                allowed = None if keys is None else {doc for doc, *_ in snap.passages(keys).values()}
                lexical = self.bm25.get(snap.bm25, snap.all_texts).top(queries, depth, allowed)
                ranked = [fuse([d, s], fusion)[:k] for d, s in zip(ranked, lexical)]
            ranked = [hits[:k] for hits in ranked]
            best = best_passages(index, snap, q_vectors, ranked, dense)
            rows = snap.hit_rows([doc for hits in ranked for doc, _ in hits])
        return [[_hit(doc, score, rows[doc], best[qi][doc]) for doc, score in hits] for qi, hits in enumerate(ranked)]

    def _candidates(self, snap, filter, subset) -> list[int] | None:
        """Passage keys allowed by ``filter`` and ``subset`` (None: all)."""
        if subset is not None:
            snap.require(subset)
        if filter is not None:
            if not isinstance(filter, dict):
                raise InvalidInputError(f"filter must be a dict such as {{'lang': 'en'}}, got {type(filter).__name__}.")
            return snap.filter_keys(filter, subset)
        return None if subset is None else snap.passage_keys(subset)

    def get(self, doc_id: str) -> dict:
        """``{"id", "text", "metadata"}`` of a document (``NotFoundError`` if unknown)."""
        if not isinstance(doc_id, str):
            raise InvalidInputError(f"an id is a string, got {type(doc_id).__name__}.")
        with self.store.read() as snap:
            row = snap.require([doc_id])[doc_id]
        return {"id": doc_id, "text": row[1], "metadata": None if row[2] is None else json.loads(row[2])}

    def explain(self, query: str, doc_id: str) -> dict:
        """Why ``doc_id`` scores what it does for ``query``: the MaxSim alignment of its best passage
        (``explain.explain_alignment``, character spans in the whole text) plus ``id`` and ``passage``."""
        if not isinstance(query, str):
            raise InvalidInputError(f"explain takes one query string, got {type(query).__name__}.")
        check_queries(query)
        with self.reading() as (snap, index):
            text = self.get(doc_id)["text"]
            return {"id": doc_id, **explain_passage(self.model, index, snap, query, doc_id, text)}

    def __len__(self) -> int:
        with self.store.read() as snap:
            return snap.counts()["documents"]

    def stats(self) -> dict:
        """documents, passages, tokens (token vectors stored), bytes_on_disk, index_tiers (bytes
        per tier of the index, ``Index.tier_bytes``), version, index kind, model, dim, hybrid,
        pool_factor."""
        size = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        with self.store.read() as snap:
            counts, version = snap.counts(), snap.version
        with self.reading() as (_, view):
            tiers = view.tier_bytes()
        return {**counts, "bytes_on_disk": size, "index_tiers": tiers, "version": version, "index": self.manifest["index"],
                "model": self.manifest["model"], "dim": self.manifest["dim"], "hybrid": self.manifest["hybrid"],
                "pool_factor": self.manifest["pool_factor"]}

    def __repr__(self) -> str:
        return f"Retriever({str(self.folder)!r}, documents={len(self)}, index={self.manifest['index']!r})"


class _Staged:
    """Where an index inside a retriever commits: in memory, until the folder's store commits it."""

    def __init__(self, body: dict):
        self.body = body

    def read(self) -> dict:
        return self.body

    def lock(self):
        return contextlib.nullcontext()

    def commit(self, body: dict) -> None:
        self.body = body


def _hit(doc_id: str, score: float, row: dict, passage: tuple[int, int, int]) -> dict:
    ordinal, start, end = passage
    return {"id": doc_id, "score": float(score), "text": row["text"], "metadata": row["metadata"],
            "passage": {"index": ordinal, "start": start, "end": end, "text": row["text"][start:end]}}


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        raise NotFoundError(f"{folder} is not a retriever folder ({MANIFEST} missing; if a create was "
                            "interrupted, delete the folder and create it again).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptedError(f"{path} is not valid JSON ({exc}): restore it or rebuild the folder.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptedError(f"{path}: not a {FORMAT} manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(f"{path}: format version {manifest.get('format_version')!r}; this maxsim reads "
                                f"version {FORMAT_VERSION}: rebuild the folder with `maxsim index`.")
    return manifest
