"""``Retriever``: a ``Collection`` in one folder — a model, an index, the documents and (optionally)
BM25, versioned together (layout: ``maxsim.search.folder``; versions: ``maxsim.search.versions``).

A folder holds texts or pages (page images, ``maxsim.search.pages``), as its model decides
(``modality`` in the manifest). A change (add, upsert, remove) encodes first, then takes the
folder's lock and commits version N+1; a second writer waits for the lock up to ``lock_timeout``
seconds, then gets ``LockedError`` naming the process holding it. A read sees one version from start
to end, whatever other processes commit.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from maxsim.errors import AlreadyExistsError, CorruptedError, InvalidInputError, NotFoundError
from maxsim.index import KINDS, auto_kind
from maxsim.models.loading import load_model
from maxsim.models.pages.defaults import PAGE_BATCH, PAGE_POOL_FACTOR
from maxsim.search import folder as layout
from maxsim.search import pages as page_store
from maxsim.search.bm25 import BM25Versions
from maxsim.search.collection import LIST_LIMIT
from maxsim.search.fusion import dense_floor, fuse
from maxsim.search.heatmaps import explain_page
from maxsim.search.hits import Document, Hit, Passage
from maxsim.search.inputs import check_doc_id, check_ids, check_metadata, check_queries, check_texts
from maxsim.search.options import SearchOptions, check_filter, check_page
from maxsim.search.passages import Encoder, best_passages, explain_passage, rank_documents
from maxsim.search.prf import PRF, Expansion, expand, explain_expansion
from maxsim.search.store import FILE, StateStore
from maxsim.search.versions import Versions

TEXT_BATCH = 32  # passages per forward pass
_KIND = {"text": "text", "image": "page"}


class Retriever:
    """Search documents with a multi-vector model (MaxSim), optionally fused with BM25. Build one with
    ``Retriever.create``; reopen it with ``maxsim.open`` (or ``Retriever.open``). Reads are
    thread-safe; other processes' commits are seen by the next read. ``lock_timeout``: seconds a
    write waits for another writer's lock before ``LockedError``."""

    lock_timeout = 600.0

    def __init__(self, folder: str | Path, model, manifest: dict, store: StateStore, load=None):
        """``model``: the encoder, or None with ``load``: a callable that loads it on first use
        (so ``get``, ``remove``, ``len`` and ``stats`` never load a model)."""
        self.folder, self.manifest, self.store = Path(folder), manifest, store
        self._model, self._load, self._model_lock = model, load, threading.Lock()
        self.bm25 = BM25Versions(self.folder / "bm25") if manifest["hybrid"] else None
        self.pages = page_store.PageStore(self.folder) if manifest["modality"] == "image" else None
        self.versions = Versions(self.folder, KINDS[manifest["kind"]], store, self.bm25, self.pages, self.lock_timeout)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path, model=None, index: str = "exact", hybrid: bool = True,
               model_name: str | None = None, device: str | None = None, dtype: str | None = None,
               passages: bool | dict = True, pool_factor: int | None = None, expected_tokens: int | None = None,
               **index_params) -> Retriever:
        """Create an empty retriever in ``folder`` (new or empty).

        ``model``: a ``MultiVectorEncoder`` (a collection of texts) or a ``PageEncoder`` (of pages),
        or None to load ``model_name`` ("default", a folder or a hub id; default "default"). A model
        given without ``model_name`` is saved into the folder. ``index``: the index kind, "exact",
        "plaid", or "auto": ``choose_kind`` for ``expected_tokens`` token vectors (e.g.
        ``maxsim.index.estimate_tokens(texts)``); ``index_params`` go to it. ``hybrid``: keep BM25
        too. ``passages`` (texts): split documents longer than the model's document length into
        passages (True, or ``{"overlap": tokens, "max_tokens": tokens}``); False truncates them (with
        a warning). ``pool_factor``: keep about 1/pool_factor of each passage's token vectors
        (default 1 for texts, ``PAGE_POOL_FACTOR`` = 3 for pages).
        ``codec`` (in ``index_params``, PLAID): a trained ``ResidualCodec`` the index adopts.
        """
        folder = Path(folder)
        if index not in (*KINDS, "auto"):
            raise InvalidInputError(f"index must be 'auto' or one of {sorted(KINDS)}, got {index!r}.")
        if model is None:
            model_name = model_name or "default"
            model = load_model(model_name, device, dtype)
        index = auto_kind(index, expected_tokens, model.dim, index_params)
        codec = index_params.pop("codec", None)
        body = KINDS[index].new_body(model.dim, **index_params)
        modality = getattr(model, "modality", "text")
        if pool_factor is None:
            pool_factor = PAGE_POOL_FACTOR if modality == "image" else 1
        manifest = {"format": layout.FORMAT, "format_version": layout.FORMAT_VERSION, "model": model_name,
                    "dim": model.dim, "modality": modality, "kind": index, "hybrid": bool(hybrid),
                    "passages": Encoder.passage_settings(model, passages) if modality == "text" else None,
                    "pool_factor": Encoder.check_pool(pool_factor)}
        layout.new_folder(folder)
        if codec is not None:
            body = KINDS[index].with_codec(body, folder / "index", codec)
        if model_name is None:
            model.save(folder / layout.SAVED_MODEL)
            manifest["model"] = layout.SAVED_MODEL
        elif model_name != "default" and Path(model_name).exists():
            manifest["model"] = str(Path(model_name).resolve())
        store = StateStore(folder / FILE, create=True, schema=page_store.SCHEMA if modality == "image" else "")
        bm25 = BM25Versions(folder / "bm25").publish([], []) if hybrid else None
        store.initialize(body, bm25, time.time())
        layout.write_settings(folder, manifest)
        return cls(folder, model, manifest, store)

    @classmethod
    def open(cls, folder: str | Path, model=None, device: str | None = None, dtype: str | None = None) -> Retriever:
        """Open a retriever folder; ``model=None`` loads the one it names on first use."""
        folder = Path(folder)
        manifest = layout.read_settings(folder)
        retriever = cls(folder, model, manifest, StateStore(folder / FILE),
                        lambda: load_model(layout.model_source(folder, manifest), device, dtype))
        if model is not None:
            retriever._check_model(model)
        return retriever

    @property
    def model(self):
        """The encoder (loaded on first use when the folder was opened without one; then it remembers its
        last queries' vectors, so that explaining the hits of a search encodes the query once)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    from maxsim.search.querycache import QueryCache

                    self._model = QueryCache(self._check_model(self._load()))
        return self._model

    @property
    def modality(self) -> str:
        """What the documents are: "text", or "image" (pages)."""
        return self.manifest["modality"]

    def _check_model(self, model):
        modality = getattr(model, "modality", "text")
        if modality != self.modality:
            raise InvalidInputError(f"{self.folder} is a {_KIND[self.modality]} collection but the model encodes "
                                    f"{_KIND[modality]}s: open it with the model it was built with "
                                    f"({self.manifest['model']!r}).")
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

    @property
    def version(self) -> int:
        """The newest committed version."""
        return self.versions.version

    @property
    def index(self):
        """The index at the newest committed version (read-only; passage keys as ids)."""
        with self.versions.reading() as (_, view):
            return view

    # -- changes -----------------------------------------------------------------------------
    def add(self, texts: Sequence[str] | None = None, ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None, batch_size: int | None = None,
            show_progress_bar: bool | None = None, embeddings=None, *, pages=None) -> list[str]:
        """Encode and add documents; ``ids`` default to fresh unique strings; ``metadata[i]`` a JSON
        dict or None; ``embeddings``: precomputed (n_tokens, dim) arrays, one per text (then texts
        are not encoded nor split), or a ``maxsim.search.passages.Encoded`` (passages split and
        encoded elsewhere). Returns the ids. All or nothing: an id already present raises
        ``AlreadyExistsError`` and changes nothing.

        A page collection takes ``pages``: PIL images, image files or ``maxsim.io.pages.PageRef``
        (PDF pages), or a ``PageCorpus`` (``maxsim.io.read_pages``; its ids, texts and metadata fill
        the arguments not given); ``texts`` are then the pages' texts for BM25 ("" by default).
        ``batch_size``: passages (pages) per forward pass, default 32 (8)."""
        return self._put(texts, ids, metadata, batch_size, show_progress_bar, embeddings, False, pages)

    def upsert(self, texts: Sequence[str] | None = None, ids: Sequence[str] | None = None,
               metadata: Sequence[dict | None] | None = None, batch_size: int | None = None,
               show_progress_bar: bool | None = None, embeddings=None, *, pages=None) -> list[str]:
        """Add documents (or ``pages``), replacing (text, passages, vectors, metadata, BM25, page
        image and grid) those whose id exists, in one commit. Returns the ids."""
        return self._put(texts, ids, metadata, batch_size, show_progress_bar, embeddings, True, pages)

    def _put(self, texts, ids, metadata, batch_size, show_progress_bar, embeddings, replace: bool,
             pages) -> list[str]:
        texts, ids, metadata, pages = checked_inputs(self.folder, self.modality, texts, ids, metadata, pages,
                                                     embeddings, replace)
        if not texts:
            return []
        with self.store.read() as snap:
            self._refuse_taken(snap, ids, replace)  # early, before encoding
        encoded = encode_inputs(lambda: self.model, self.manifest, texts, pages, batch_size, show_progress_bar,
                                embeddings)
        with self.versions.writing(self.lock_timeout) as (snap, index):
            present = self._refuse_taken(snap, ids, replace)
            if present:
                index.remove([str(key) for key in snap.delete(present)])
            keys = []
            for doc_id, text, meta, spans, n_tokens in zip(ids, texts, metadata, encoded.spans, encoded.tokens):
                keys += snap.insert(doc_id, text, meta, spans, n_tokens)
            index.add([str(key) for key in keys], encoded.vectors)
            if self.pages is not None:
                self.pages.insert(snap, ids, encoded)
        return ids

    def _refuse_taken(self, snap, ids: list[str], replace: bool) -> list[str]:
        present = snap.present(ids)
        if present and not replace:
            raise AlreadyExistsError(f"id {present[0]!r} is already in the collection ({len(present)} of the ids are): "
                                     "remove it first, upsert, or pick new ids.")
        return present

    def remove(self, ids: Sequence[str]) -> None:
        """Remove documents by id in one commit; an unknown id raises ``NotFoundError``, changing nothing."""
        ids = check_ids(ids, "ids")
        if not ids:
            return
        with self.versions.writing(self.lock_timeout) as (snap, index):
            snap.require(ids)
            index.remove([str(key) for key in snap.delete(ids)])

    # -- reads ---------------------------------------------------------------------------------
    def search(self, query: str | Sequence[str], k: int = 10, hybrid: bool = False, fusion: str = "rrf",
               filter: dict | None = None, subset: Sequence[str] | None = None, prf=None,
               alpha: float | None = None) -> list[list[Hit]]:
        """Per query, up to ``k`` ``Hit``s best first (a single string still gives a list of one list).
        A document scores its best passage (MaxSim), or the fused score when ``hybrid`` (``fusion``
        "rrf", "convex" with dense weight ``alpha``, or "score"; each ranker contributing its top
        ``FUSION_DEPTH``); ``hit.passage`` is that passage. ``filter``: a metadata filter
        (``maxsim.search.filters``); ``subset``: these ids only; ``prf``: ColBERT-PRF (True, a dict or
        a ``maxsim.search.prf.PRF``): the query is expanded from the top documents of the same search
        and run again, both on one version."""
        queries = check_queries(query)
        options = SearchOptions.checked(k, hybrid, fusion, filter, subset, prf, alpha, self.bm25 is not None,
                                        self.folder)
        q_vectors = self.model.encode_query(queries)
        with self.versions.reading():
            if options.prf is not None:
                first = self.search_vectors(queries, q_vectors, options.first_pass())
                q_vectors = [e.query(q) for e, q in zip(self.expansions(first, options.prf), q_vectors)]
            return self.search_vectors(queries, q_vectors, options)

    def search_vectors(self, queries: list[str], q_vectors: list, options: SearchOptions) -> list[list[Hit]]:
        """``search`` with the query vectors given: ``q_vectors[i]`` (n_tokens, dim) float32 of
        ``queries[i]`` (its text, for BM25); ``options``: checked ``SearchOptions`` (its prf unused)."""
        with self.versions.reading() as (snap, index):
            keys = self._candidates(snap, options)
            if len(index) == 0 or keys == []:
                return [[] for _ in queries]
            dense = rank_documents(index, snap, q_vectors, options.depth, keys)
            ranked = [[(doc, score) for doc, score, _ in hits] for hits in dense]
            if options.hybrid:
                allowed = None if keys is None else {doc for doc, *_ in snap.passages(keys).values()}
                lexical = self.bm25.get(snap.bm25, snap.all_texts).top(queries, options.depth, allowed)
                ranked = [fuse([d, s], options.fusion, options.alpha, lower=[dense_floor(q), 0.0])
                          for d, s, q in zip(ranked, lexical, q_vectors)]
            ranked = [hits[:options.k] for hits in ranked]
            best = best_passages(index, snap, q_vectors, ranked, dense)
            rows = snap.hit_rows([doc for hits in ranked for doc, _ in hits])
        return [[make_hit(doc, score, rows[doc], best[qi][doc]) for doc, score in hits]
                for qi, hits in enumerate(ranked)]

    def expansions(self, feedback: list[list[Hit]], prf: PRF) -> list[Expansion]:
        """ColBERT-PRF's expansion of each query from its feedback hits (their best passages), weighted
        by the folder's BM25 idf."""
        with self.store.read() as snap:
            bm25 = self.bm25.get(snap.bm25, snap.all_texts)
        return [expand(self.model, bm25, [hit.passage.text for hit in hits], prf) for hits in feedback]

    def _candidates(self, snap, options: SearchOptions) -> list[int] | None:
        """Passage keys allowed by the filter and the subset (None: all)."""
        if options.subset is not None:
            snap.require(options.subset)
        if options.filter is not None:
            return snap.filter_keys(options.filter, options.subset)
        return None if options.subset is None else snap.passage_keys(options.subset)

    def get(self, doc_id: str) -> Document:
        """The document ``doc_id`` (``NotFoundError`` if unknown)."""
        check_doc_id(doc_id)
        with self.store.read() as snap:
            return Document(doc_id, *snap.document(doc_id))

    def documents(self, filter: dict | None = None, limit: int = LIST_LIMIT, offset: int = 0) -> list[Document]:
        """The documents matching ``filter`` (all when None), in id order, ``limit`` from ``offset``."""
        limit, offset = check_page(limit, offset)
        with self.store.read() as snap:
            rows = snap.listing(check_filter(filter), limit, offset)
        return [Document(*row) for row in rows]

    def explain(self, query: str, doc_id: str, prf=None, hybrid: bool = False, filter: dict | None = None) -> dict:
        """Why ``doc_id`` scores what it does for ``query``, read from one version: the MaxSim
        alignment of its best passage (``explain.explain_alignment``, character spans in the whole
        text), plus ``id``, ``text`` (the document's) and ``passage`` (``Passage``). A page: the
        alignment over its vectors and ``page``, the heatmaps over its patch grid
        (``maxsim.search.heatmaps``). With ``prf`` (and the ``hybrid`` and ``filter`` of that search),
        also ``expansion``: what each expansion embedding matched in the passage
        (``prf.explain_expansion``)."""
        if not isinstance(query, str):
            raise InvalidInputError(f"explain takes one query string, got {type(query).__name__}.")
        check_queries(query)
        check_doc_id(doc_id)
        options = SearchOptions.checked(1, hybrid, filter=filter, prf=prf, lexical=self.bm25 is not None,
                                        where=self.folder)
        with self.versions.reading() as (snap, index):
            text, _ = snap.document(doc_id)
            if self.pages is not None:
                return {"id": doc_id, "text": text, **explain_page(self.model, index, snap, self.pages, query, doc_id,
                                                                   text)}
            stored = self.manifest["kind"] == "exact" and self.manifest["pool_factor"] == 1
            out = {"id": doc_id, "text": text, **explain_passage(self.model, index, snap, query, doc_id, text, stored)}
            if options.prf is not None:
                first = self.search_vectors([query], self.model.encode_query([query]), options.first_pass())
                out["expansion"] = explain_expansion(self.model, self.expansions(first, options.prf)[0],
                                                     out["passage"])
        return out

    def page_image(self, doc_id: str) -> page_store.PageImage:
        """The stored image of the page ``doc_id`` (``NotFoundError`` if unknown, or in a text collection)."""
        check_doc_id(doc_id)
        if self.pages is None:
            raise NotFoundError(f"{self.folder} is a text collection: its documents have no page image.")
        for _ in range(3):  # None: a newer version collected the file since the read began; read that one
            with self.store.read() as snap:
                image = self.pages.image(snap, doc_id)
            if image is not None:
                return image
        raise CorruptedError(f"{self.pages.folder}: the image file of page {doc_id!r} is missing; re-add the page "
                             "with upsert.")

    def __len__(self) -> int:
        with self.store.read() as snap:
            return snap.counts()["documents"]

    def stats(self) -> dict:
        """documents, passages, tokens (token vectors stored), split_documents, bytes_on_disk,
        index_tiers (bytes per tier of the index, ``tier_bytes``), version, kind (of index), model, dim,
        modality, hybrid, pool_factor; for pages ``page_bytes``: bytes of the index files and of the page images."""
        with self.versions.reading() as (snap, index):
            counts, version, tiers = snap.counts(), snap.version, index.tier_bytes()
        stats = {**counts, "bytes_on_disk": layout.folder_bytes(self.folder), "index_tiers": tiers, "version": version,
                 **{key: self.manifest[key] for key in ("kind", "model", "dim", "modality", "hybrid", "pool_factor")}}
        if self.pages is not None:
            stats["page_bytes"] = {"index": layout.folder_bytes(self.folder / "index"), "images": self.pages.bytes()}
        return stats

    def __repr__(self) -> str:
        return f"Retriever({str(self.folder)!r}, documents={len(self)}, kind={self.manifest['kind']!r})"


def checked_documents(texts, ids, metadata) -> tuple[list[str], list[str], list[dict | None]]:
    """Texts, ids (fresh ones when None) and metadata of documents to add, checked together."""
    texts = check_texts(texts)
    ids = [uuid.uuid4().hex for _ in texts] if ids is None else check_ids(ids, "ids")
    if len(ids) != len(texts):
        raise InvalidInputError(f"got {len(ids)} ids for {len(texts)} texts: pass one id per text.")
    return texts, ids, check_metadata(metadata, len(texts))


def checked_inputs(where, modality: str, texts, ids, metadata, pages, embeddings, replace: bool):
    """``(texts, ids, metadata, pages)`` of a write to the collection ``where`` of ``modality``,
    checked together (``pages`` None for texts, or a page collection given encoded pages)."""
    page_store.check_kind(where, modality, pages, embeddings)
    if pages is not None:
        pages, texts, ids, metadata = page_store.checked_pages(pages, texts, ids, metadata)
    if replace and ids is None:
        raise InvalidInputError("upsert needs the ids of the documents to replace or add.")
    return (*checked_documents(texts, ids, metadata), pages)


def encode_inputs(model_of, manifest: dict, texts: list[str], pages, batch_size: int | None, show_progress_bar,
                  embeddings=None):
    """``Encoded`` texts (or the ``embeddings`` given), or ``EncodedPages`` of ``pages``, with the
    collection's settings (``manifest``); ``model_of()`` gives the model."""
    if pages is None:
        return Encoder(model_of, manifest).encode(texts, batch_size or TEXT_BATCH, show_progress_bar, embeddings)
    return page_store.encode_pages(model_of(), pages, texts, manifest["pool_factor"], batch_size or PAGE_BATCH,
                                   show_progress_bar)


def make_hit(doc_id: str, score: float, row: dict, passage: tuple[int, int, int]) -> Hit:
    ordinal, start, end = passage
    return Hit(doc_id, float(score), row["text"], row["metadata"],
               Passage(ordinal, start, end, row["text"][start:end]))
