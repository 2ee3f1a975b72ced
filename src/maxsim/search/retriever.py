"""Retriever: a model, an index, the texts and metadata, and (optionally) BM25, in one folder.

Layout of a retriever folder::

    retriever.json        manifest: format, version, model name, dim, index kind, hybrid
    index/                the index (ExactIndex or PlaidIndex), atomic on its own
    documents.sqlite3     texts + metadata by id (see ``docstore``)
    bm25/                 the BM25 index when hybrid, derived from the texts (see ``bm25``)
    model/                a copy of the model, only when it was given without a name
    LOCK                  held by a writer during add/remove

The index decides which ids exist. ``add`` writes the texts first (pending), then commits the
index, then marks the texts committed and rebuilds BM25; ``remove`` marks the texts pending,
commits the index, then deletes them. A crash at any point leaves pending rows that the next
writer settles against the index, and a BM25 index that is rebuilt because its ids differ.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

from maxsim.index import KINDS, open_index
from maxsim.index.checks import check_ids
from maxsim.index.storage import FileWriter, writer_lock
from maxsim.models.encoder import check_texts
from maxsim.search.bm25 import BM25Ranker
from maxsim.search.docstore import DocumentStore
from maxsim.search.explain import explain_alignment
from maxsim.search.fusion import FUSION_DEPTH, METHODS, fuse

MANIFEST = "retriever.json"
FORMAT = "maxsim-retriever"
FORMAT_VERSION = 1
SAVED_MODEL = "model"
LOCK_TIMEOUT_S = 600.0


class Retriever:
    """Search a collection of texts with a multi-vector model (MaxSim), optionally fused with BM25.
    Build one with ``Retriever.create`` and reopen it with ``Retriever.open``."""

    def __init__(self, folder: str | Path, model, index, manifest: dict):
        self.folder = Path(folder)
        self.model = model
        self.index = index
        self.manifest = manifest
        self.store = DocumentStore(self.folder / "documents.sqlite3")
        self.bm25 = BM25Ranker(self.folder / "bm25") if manifest["hybrid"] else None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path, model=None, index: str = "exact", hybrid: bool = True,
               model_name: str | None = None, device: str | None = None, **index_params) -> "Retriever":
        """Create an empty retriever in ``folder`` (new or empty).

        ``model``: a ``MultiVectorEncoder``, or None to load ``model_name`` ("default", a folder or
        a hub id; default "default"). A model given without ``model_name`` is saved into the folder
        so ``open`` can reload it. ``index``: "exact" or "plaid"; ``index_params`` go to its
        ``create``. ``hybrid``: also keep a BM25 index for ``search(..., hybrid=True)``.
        """
        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty: open it with Retriever.open, or pick a new folder.")
        if index not in KINDS:
            raise ValueError(f"index must be one of {sorted(KINDS)}, got {index!r}.")
        if model is None:
            model_name = model_name or "default"
            model = load_model(model_name, device)
        folder.mkdir(parents=True, exist_ok=True)
        if model_name is None:
            model.save(folder / SAVED_MODEL)
            model_name = SAVED_MODEL
        elif model_name != "default" and Path(model_name).exists():
            model_name = str(Path(model_name).resolve())
        index_object = KINDS[index].create(folder / "index", dim=model.dim, **index_params)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model_name, "dim": model.dim,
                    "index": index, "hybrid": bool(hybrid)}
        retriever = cls(folder, model, index_object, manifest)
        writer = FileWriter(folder)
        writer.json(MANIFEST, manifest)  # written last: a folder without it is an interrupted create
        writer.sync()
        return retriever

    @classmethod
    def open(cls, folder: str | Path, model=None, device: str | None = None) -> "Retriever":
        """Open a retriever folder; ``model=None`` loads the model its manifest names."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if model is None:
            name = manifest["model"]
            model = load_model(str(folder / SAVED_MODEL) if name == SAVED_MODEL else name, device)
        if model.dim != manifest["dim"]:
            raise ValueError(f"the model gives {model.dim}-dim vectors but {folder} holds {manifest['dim']}-dim "
                             f"ones: open it with the model it was built with ({manifest['model']!r}).")
        return cls(folder, model, open_index(folder / "index"), manifest)

    def refresh(self) -> bool:
        """See changes committed by another process since this one opened; True if there were any.
        (BM25 follows at the next hybrid search.)"""
        return bool(self.index.refresh())

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- changes -----------------------------------------------------------------------------
    def add(self, texts: Sequence[str], ids: Sequence[str] | None = None, metadata: Sequence[dict | None] | None = None,
            batch_size: int = 32, show_progress_bar: bool | None = None) -> list[str]:
        """Encode and add documents; ``ids`` default to fresh unique strings; ``metadata[i]`` is a
        JSON-serialisable dict or None. Returns the ids. All or nothing: bad input raises and
        changes nothing."""
        texts = check_texts(texts)
        ids = [uuid.uuid4().hex for _ in texts] if ids is None else check_ids(ids, "ids")
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts: pass one id per text.")
        metadata = _check_metadata(metadata, len(texts))
        if not texts:
            return []
        with writer_lock(self.folder, LOCK_TIMEOUT_S):
            present = self._settle()
            taken = [i for i in ids if i in present]
            if taken:
                raise ValueError(f"id {taken[0]!r} is already in {self.folder} ({len(taken)} of the ids are): "
                                 "remove it first or pick new ids.")
            embeddings = self.model.encode_document(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
            self.store.put_pending(ids, texts, metadata, [len(e) for e in embeddings])
            try:
                self.index.add(ids, embeddings)
            finally:
                self._settle()
            self._sync_bm25()
        return ids

    def remove(self, ids: Sequence[str]) -> None:
        """Remove documents by id; an unknown id raises KeyError and changes nothing."""
        ids = check_ids(ids, "ids")
        if not ids:
            return
        with writer_lock(self.folder, LOCK_TIMEOUT_S):
            present = self._settle()
            unknown = [i for i in ids if i not in present]
            if unknown:
                raise KeyError(f"id {unknown[0]!r} is not in {self.folder} ({len(unknown)} unknown ids); "
                               "nothing was removed.")
            self.store.set_pending(ids, True)
            try:
                self.index.remove(ids)
            finally:
                self._settle()
            self._sync_bm25()

    def _settle(self) -> set[str]:
        """Move the index to its newest commit (another process may have written), settle rows left
        pending by an interrupted change against it; returns its ids. Called with the lock held."""
        self.index.refresh()
        present = set(self.index.ids())
        self.store.reconcile(present.__contains__)
        return present

    def _sync_bm25(self) -> None:
        if self.bm25 is not None:
            self.bm25.sync(self.index.ids(), self.store.texts)

    # -- reads ---------------------------------------------------------------------------------
    def search(self, query: str | Sequence[str], k: int = 10, hybrid: bool = False, fusion: str = "rrf",
               subset: Sequence[str] | None = None) -> list[list[dict]]:
        """Per query, up to ``k`` hits ``{"id", "score", "text", "metadata"}`` best first (a single
        string still gives a list of one list). ``score``: MaxSim, or the fused score when
        ``hybrid`` (``fusion`` "rrf" or "score", each ranker contributing its top ``FUSION_DEPTH``).
        ``subset``: restrict to these ids."""
        queries = _check_queries(query)
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive int, got {k!r}.")
        if hybrid and self.bm25 is None:
            raise ValueError(f"{self.folder} keeps no BM25 index: create it with hybrid=True to search hybrid.")
        if fusion not in METHODS:
            raise ValueError(f"fusion must be one of {METHODS}, got {fusion!r}.")
        if subset is not None:
            subset = check_ids(subset, "subset")
            unknown = [i for i in subset if i not in self.index]
            if unknown:
                raise KeyError(f"subset id {unknown[0]!r} is not in {self.folder} ({len(unknown)} unknown ids).")
        if len(self.index) == 0 or subset == []:
            return [[] for _ in queries]
        depth = max(k, FUSION_DEPTH) if hybrid else k
        ranked = self.index.search(self.model.encode_query(queries), k=depth, subset=subset)
        if hybrid:
            self._sync_bm25()
            lexical = self.bm25.top(queries, depth, subset)
            ranked = [fuse([dense, sparse], fusion) for dense, sparse in zip(ranked, lexical)]
        ranked = [hits[:k] for hits in ranked]
        documents = self.store.get_many([doc_id for hits in ranked for doc_id, _ in hits])
        return [[{"id": doc_id, "score": float(score), "text": documents[doc_id]["text"],
                  "metadata": documents[doc_id]["metadata"]} for doc_id, score in hits] for hits in ranked]

    def get(self, doc_id: str) -> dict:
        """``{"id", "text", "metadata"}`` of a document (KeyError if unknown)."""
        found = self.store.get_many([doc_id]) if isinstance(doc_id, str) else {}
        if doc_id not in found or doc_id not in self.index:
            raise KeyError(f"id {doc_id!r} is not in {self.folder}.")
        return {key: found[doc_id][key] for key in ("id", "text", "metadata")}

    def explain(self, query: str, doc_id: str) -> dict:
        """Why ``doc_id`` scores what it does for ``query``: the MaxSim alignment (see
        ``explain.explain_alignment``) plus ``id``. The score is recomputed from the text."""
        if not isinstance(query, str):
            raise TypeError(f"explain takes one query string, got {type(query).__name__}.")
        _check_queries(query)
        return {"id": doc_id, **explain_alignment(self.model, query, self.get(doc_id)["text"])}

    def __len__(self) -> int:
        return len(self.index)

    def stats(self) -> dict:
        """documents, tokens (token vectors stored), bytes_on_disk, index kind, model, dim, hybrid."""
        size = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        return {"documents": len(self), "tokens": self.store.total_tokens(), "bytes_on_disk": size,
                "index": self.manifest["index"], "model": self.manifest["model"], "dim": self.manifest["dim"],
                "hybrid": self.manifest["hybrid"]}

    def __repr__(self) -> str:
        return f"Retriever({str(self.folder)!r}, documents={len(self)}, index={self.manifest['index']!r})"


def load_model(name: str, device: str | None = None):
    """"default" -> ``MultiVectorEncoder.default()``, else ``MultiVectorEncoder(name)`` (folder or hub id)."""
    from maxsim.models import MultiVectorEncoder

    return MultiVectorEncoder.default(device=device) if name == "default" else MultiVectorEncoder(name, device=device)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a retriever folder ({MANIFEST} missing; if a create was "
                                "interrupted, delete the folder and create it again).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}).") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r} "
                         f"is not a {FORMAT} this maxsim reads (version <= {FORMAT_VERSION}).")
    return manifest


def _check_metadata(metadata, n: int) -> list[dict | None]:
    if metadata is None:
        return [None] * n
    metadata = list(metadata)
    if len(metadata) != n:
        raise ValueError(f"got {len(metadata)} metadata entries for {n} texts: pass one (or None) per text.")
    for i, item in enumerate(metadata):
        if item is not None and not isinstance(item, dict):
            raise TypeError(f"metadata[{i}] is {type(item).__name__}: pass a dict or None.")
        try:
            json.dumps(item, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata[{i}] is not JSON-serialisable ({exc}).") from None
    return metadata


def _check_queries(query) -> list[str]:
    queries = [query] if isinstance(query, str) else query
    if not isinstance(queries, Sequence) or isinstance(queries, bytes):
        raise TypeError(f"query must be a string or a list of strings, got {type(query).__name__}.")
    for i, text in enumerate(queries):
        if not isinstance(text, str):
            raise TypeError(f"query {i} is {type(text).__name__}, not str.")
        if not text.strip():
            raise ValueError(f"query {i} is empty: pass some text to search for.")
    return list(queries)
