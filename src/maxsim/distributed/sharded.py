"""``ShardedRetriever``: a ``Collection`` spread over shard folders (see ``collection``), searched and
written as one.

A search fans out to every shard (threads in this process, or Ray actors: ``remote``) and merges:
dense hits by MaxSim score (each shard answers its own top ``depth``, so the merged top ``depth`` is
the collection's); for ``hybrid`` the collection's BM25 (``lexical``: statistics of the union of the
shards) ranks the lexical side and the same fusion as ``Retriever`` combines both. So the answer is
the one a single folder of the same documents gives. A write encodes once, here, routes each id to
its shard (``shard_of``), commits the shards, then the collection's BM25 and state, all under the
collection's lock; each shard commits atomically, and a process killed between shard commits loses
only that unacknowledged write's shards not yet committed (``lexical.recover`` repairs the BM25).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Sequence
from pathlib import Path

from maxsim.distributed import collection as col
from maxsim.distributed.codec import SharedCodec
from maxsim.distributed.lexical import Lexical, insertion_order
from maxsim.distributed.shards import LocalShards
from maxsim.errors import AlreadyExistsError, NotFoundError
from maxsim.index import auto_kind
from maxsim.index.storage import writer_lock
from maxsim.models.loading import load_model
from maxsim.search import Retriever
from maxsim.search import pages as page_store
from maxsim.search.collection import LIST_LIMIT
from maxsim.search.folder import SAVED_MODEL, folder_bytes
from maxsim.search.fusion import dense_floor, fuse
from maxsim.search.hits import Document, Hit
from maxsim.search.inputs import check_doc_id, check_ids, check_queries
from maxsim.search.options import SearchOptions, check_filter, check_page
from maxsim.search.prf import expand
from maxsim.search.querycache import QueryCache
from maxsim.search.retriever import checked_inputs, encode_inputs


class ShardedRetriever:
    """A sharded collection (see ``collection``). Open it with ``maxsim.open`` (or
    ``ShardedRetriever.open``); create an empty one with ``ShardedRetriever.create`` or build one
    from files on Ray with ``build_collection`` (``maxsim index --ray``)."""

    lock_timeout = 600.0

    def __init__(self, folder: Path, manifest: dict, shards, model=None, load=None):
        """``shards``: ``LocalShards`` or ``remote.RayShards``; ``model``: the encoder, or None with
        ``load`` to load it on first use (writes and in-process searches need it)."""
        self.folder, self.manifest, self.shards = Path(folder), manifest, shards
        self._model, self._load, self._model_lock = model, load, threading.Lock()
        self.lexical = Lexical(self.folder, manifest["hybrid"])
        self._codec_shared = False  # PLAID: every shard has adopted the shared codec (checked once)

    @classmethod
    def create(cls, folder: str | Path, shards: int, model=None, index: str = "exact", hybrid: bool = True,
               model_name: str | None = None, device: str | None = None, dtype: str | None = None,
               passages: bool | dict = True, pool_factor: int | None = None, expected_tokens: int | None = None,
               **index_params) -> ShardedRetriever:
        """An empty collection of ``shards`` shard folders in ``folder`` (new or empty), with
        ``Retriever.create``'s arguments (``index="auto"`` chooses for each shard's share of
        ``expected_tokens``); its shards live in this process."""
        folder, n = Path(folder), col.check_shards(shards)
        if folder.exists() and any(folder.iterdir()):
            raise AlreadyExistsError(f"{folder} is not empty: open it with maxsim.open, or pick a new folder.")
        if model is None:
            model_name = model_name or "default"
            model = load_model(model_name, device, dtype)
        index = auto_kind(index, None if expected_tokens is None else expected_tokens // n, model.dim, index_params)
        folder.mkdir(parents=True, exist_ok=True)
        if model_name is None:
            model.save(folder / SAVED_MODEL)
        params = SharedCodec(folder).shard_params(index, index_params)
        shared = QueryCache(model)
        retrievers = [Retriever.create(folder / col.shard_name(i), shared, index=index, hybrid=False,
                                       model_name=model_name or SAVED_MODEL, passages=passages,
                                       pool_factor=pool_factor, **params) for i in range(n)]
        first = retrievers[0].manifest
        settings = {"model": model_name or SAVED_MODEL, "modality": first["modality"], "kind": index,
                    "index_params": index_params, "hybrid": bool(hybrid), "shards": n, "passages": first["passages"],
                    "pool_factor": first["pool_factor"]}
        manifest = {**col.new_settings(settings), "complete": True}
        collection = cls(folder, manifest, LocalShards(retrievers), model)
        collection.lexical.publish(collection._shard_versions(), [], {})
        col.write_json(folder, col.MANIFEST, manifest)  # last: a folder without it is an interrupted create
        return collection

    @classmethod
    def open(cls, folder: str | Path, model=None, device: str | None = None, dtype: str | None = None,
             ray_address: str | None = None) -> ShardedRetriever:
        """Open the collection in ``folder``; ``model=None`` loads the one it was built with (once,
        shared by in-process shards). ``ray_address`` ("local", "auto" or a cluster address): keep each
        shard in a Ray actor there."""
        folder = Path(folder)
        body = col.read_settings(folder)
        col.check_complete(folder, body)

        def load():
            return load_model(cls._model_name(folder, body), device, dtype)

        if ray_address:
            from maxsim.distributed.remote import RayShards

            shards = RayShards(folder, body, cls._model_name(folder, body), ray_address, device, dtype)
            collection = cls(folder, body, shards, model, load)
        else:
            model = QueryCache(model if model is not None else load())
            shards = LocalShards([Retriever.open(folder / name, model=model) for name in body["shard_folders"]])
            collection = cls(folder, body, shards, model)
        collection._recover()
        return collection

    @staticmethod
    def _model_name(folder: Path, body: dict) -> str:
        """What ``load_model`` loads: the copy saved in the collection, else the name it records."""
        return str(folder / SAVED_MODEL) if body["model"] == SAVED_MODEL else body["model"]

    @property
    def modality(self) -> str:
        """What the documents are: "text", or "image" (pages)."""
        return self.manifest.get("modality", "text")

    @property
    def model(self):
        """The encoder (loaded on first use when the collection was opened without one)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def close(self) -> None:
        self.shards.close()

    def __enter__(self) -> ShardedRetriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------------------------
    def search(self, query: str | Sequence[str], k: int = 10, hybrid: bool = False, fusion: str = "rrf",
               filter: dict | None = None, subset: Sequence[str] | None = None, prf=None,
               alpha: float | None = None) -> list[list[Hit]]:
        """As ``Retriever.search``, over every shard; ColBERT-PRF's feedback comes from the whole
        collection's first search and its weights from the collection's BM25."""
        queries = check_queries(query)
        options = SearchOptions.checked(k, hybrid, fusion, filter, subset, prf, alpha, self.manifest["hybrid"],
                                        self.folder)
        vectors = None
        if options.prf is not None:
            first = self._search(queries, options.first_pass(), None)
            encoded = self.model.encode_query(queries)
            vectors = [e.query(q) for e, q in zip(self.expansions(first, options.prf), encoded)]
        return self._search(queries, options, vectors)

    def _search(self, queries: list[str], options: SearchOptions, vectors) -> list[list[Hit]]:
        """The shards' hits merged (and fused); ``vectors``: the query vectors to search with (None:
        each shard encodes ``queries``)."""
        parts = self._split(options.subset)
        active = [i for i, part in enumerate(parts) if part is None or part]
        if not active:
            return [[] for _ in queries]
        per_shard = [SearchOptions(k=options.depth, filter=options.filter, subset=parts[i]) for i in active]
        if vectors is None:
            answers = self.shards.call("search", [(i, (queries,), {"k": o.k, "filter": o.filter, "subset": o.subset})
                                                  for i, o in zip(active, per_shard)])
        else:
            answers = self.shards.call("search_vectors", [(i, (queries, vectors, o), {})
                                                          for i, o in zip(active, per_shard)])
        dense = [merge_hits([answer[qi] for answer in answers], options.depth) for qi in range(len(queries))]
        if not options.hybrid:
            return [hits[:options.k] for hits in dense]
        lexical = self.lexical.current(self._all_texts).top(queries, options.depth,
                                                            self._allowed(options, active, parts))
        floors = [0.0] * len(queries)
        if options.fusion == "convex":
            floors = [dense_floor(q) for q in (vectors or self.model.encode_query(queries))]
        return [self._fused(q, hits, sparse, options, floor)
                for q, hits, sparse, floor in zip(queries, dense, lexical, floors)]

    def expansions(self, feedback: list[list[Hit]], prf) -> list:
        """As ``Retriever.expansions``, weighted by the collection's BM25 idf."""
        bm25 = self.lexical.current(self._all_texts)
        return [expand(self.model, bm25, [hit.passage.text for hit in hits], prf) for hits in feedback]

    def _split(self, subset) -> list:
        """Per shard its part of ``subset`` (None for every shard when there is no subset)."""
        if subset is None:
            return [None] * len(self.shards)
        parts: list[list[str]] = [[] for _ in range(len(self.shards))]
        for doc_id in subset:
            parts[col.shard_of(doc_id, len(self.shards))].append(doc_id)
        return parts

    def _allowed(self, options: SearchOptions, active, parts):
        """The ids BM25 may return: those matching the filter within the subset (None: all)."""
        if options.filter is None:
            return None if options.subset is None else list(options.subset)
        found = self.shards.call("matching_ids", [(i, (options.filter, parts[i]), {}) for i in active])
        return [doc_id for ids in found for doc_id in ids]

    def _fused(self, query: str, dense: list[Hit], sparse: list, options: SearchOptions, floor: float) -> list[Hit]:
        fused = fuse([[(h.id, h.score) for h in dense], sparse], options.fusion, options.alpha, lower=[floor, 0.0])
        by_id = {h.id: h for h in dense}
        lexical_only = [doc_id for doc_id, _ in fused[:options.k] if doc_id not in by_id]
        found = self.shards.call("best_hit", [(self._route(i), (query, i), {}) for i in lexical_only])
        by_id.update((hit.id, hit) for hit in found if hit is not None)  # their best passage, from their shard
        hits = [Hit(i, float(s), by_id[i].text, by_id[i].metadata, by_id[i].passage) for i, s in fused if i in by_id]
        return hits[:options.k]

    def _route(self, doc_id) -> int:
        return col.shard_of(check_doc_id(doc_id), len(self.shards))

    def get(self, doc_id: str) -> Document:
        """The document ``doc_id`` (``NotFoundError`` if unknown)."""
        return self.shards.call("get", [(self._route(doc_id), (doc_id,), {})])[0]

    def documents(self, filter: dict | None = None, limit: int = LIST_LIMIT, offset: int = 0) -> list[Document]:
        """As ``Retriever.documents``: the shards' lists merged in id order."""
        limit, offset = check_page(limit, offset)
        lists = self.shards.call("listing", [(i, (check_filter(filter), offset + limit), {})
                                             for i in range(len(self.shards))])
        return list(heapq.merge(*lists, key=lambda d: d.id))[offset: offset + limit]

    def explain(self, query: str, doc_id: str, prf=None, hybrid: bool = False, filter: dict | None = None) -> dict:
        """As ``Retriever.explain``, answered by the document's shard (with ``prf``: the expansion of
        the collection's search)."""
        options = SearchOptions.checked(1, hybrid, filter=filter, prf=prf, lexical=self.manifest["hybrid"],
                                        where=self.folder)
        expansion = None
        if options.prf is not None:
            expansion = self.expansions(self._search([query], options.first_pass(), None), options.prf)[0]
        return self.shards.call("explain_expanded", [(self._route(doc_id), (query, doc_id, expansion), {})])[0]

    def page_image(self, doc_id: str) -> page_store.PageImage:
        """As ``Retriever.page_image``, from the document's shard."""
        return self.shards.call("page_image", [(self._route(doc_id), (doc_id,), {})])[0]

    def __len__(self) -> int:
        return sum(self.shards.call("__len__", [(i, (), {}) for i in range(len(self.shards))]))

    @property
    def version(self) -> int:
        """Sum of the shards' versions: grows with every write to any shard."""
        return sum(self._shard_versions())

    def _shard_versions(self) -> list[int]:
        return self.shards.call("current_version", [(i, (), {}) for i in range(len(self.shards))])

    def stats(self) -> dict:
        """As ``Retriever.stats`` summed over the shards, plus ``shards`` and ``shard_documents``."""
        per = self.shards.call("stats", [(i, (), {}) for i in range(len(self.shards))])
        total = {key: sum(s[key] for s in per) for key in ("documents", "passages", "tokens", "split_documents",
                                                           "version")}
        stats = {**total, "bytes_on_disk": folder_bytes(self.folder), "kind": self.manifest["kind"],
                 "model": self.manifest["model"], "dim": per[0]["dim"], "modality": self.modality,
                 "hybrid": self.manifest["hybrid"], "pool_factor": per[0]["pool_factor"], "shards": len(per),
                 "shard_documents": [s["documents"] for s in per]}
        if "page_bytes" in per[0]:
            stats["page_bytes"] = {key: sum(s["page_bytes"][key] for s in per) for key in per[0]["page_bytes"]}
        return stats

    def _all_texts(self) -> tuple[list[str], list[str]]:
        ids, texts = [], []
        for shard_ids, shard_texts in self.shards.call("all_texts", [(i, (), {}) for i in range(len(self.shards))]):
            ids += shard_ids
            texts += shard_texts
        return ids, texts

    # -- writes --------------------------------------------------------------------------------
    def add(self, texts: Sequence[str] | None = None, ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None, batch_size: int | None = None,
            show_progress_bar: bool | None = None, *, pages=None) -> list[str]:
        """As ``Retriever.add`` (texts, or ``pages``): each document goes to its shard; all or nothing
        when an id is taken."""
        return self._put(texts, ids, metadata, batch_size, show_progress_bar, False, pages)

    def upsert(self, texts: Sequence[str] | None = None, ids: Sequence[str] | None = None,
               metadata: Sequence[dict | None] | None = None, batch_size: int | None = None,
               show_progress_bar: bool | None = None, *, pages=None) -> list[str]:
        """As ``Retriever.upsert``, routed to the documents' shards."""
        return self._put(texts, ids, metadata, batch_size, show_progress_bar, True, pages)

    def _put(self, texts, ids, metadata, batch_size, show_progress_bar, replace: bool, pages) -> list[str]:
        texts, ids, metadata, pages = checked_inputs(self.folder, self.modality, texts, ids, metadata, pages, None,
                                                     replace)
        if not texts:
            return []
        self._refuse_taken(ids, replace)  # early, before encoding
        encoded = encode_inputs(lambda: self.model, self._shard_manifest(), texts, pages, batch_size, show_progress_bar)
        with self._writing(ids):
            self._refuse_taken(ids, replace)
            if not self._codec_shared:
                codec = SharedCodec(self.folder).ensure(self.manifest, encoded.vectors)
                if codec is not None:  # every shard adopts it before its first add
                    self.shards.call("adopt_codec", [(s, (codec,), {}) for s in range(len(self.shards))])
                self._codec_shared = True
            calls = []
            for s, rows in self._by_shard(ids).items():
                part = encoded.select(rows)
                calls.append((s, ([texts[r] for r in rows],), {"ids": [ids[r] for r in rows], "embeddings": part,
                                                               "metadata": [metadata[r] for r in rows]}))
            self.shards.call("upsert" if replace else "add", calls)
        return ids

    def remove(self, ids: Sequence[str]) -> None:
        """As ``Retriever.remove``: an unknown id raises ``NotFoundError`` before any shard changes."""
        ids = check_ids(ids, "ids")
        if not ids:
            return
        with self._writing(ids):
            present = self._present(ids)
            unknown = [i for i in ids if i not in present]
            if unknown:
                raise NotFoundError(f"id {unknown[0]!r} is not in the collection ({len(unknown)} unknown ids); "
                                    "nothing was changed.")
            self.shards.call("remove", [(s, ([ids[r] for r in rows],), {}) for s, rows in self._by_shard(ids).items()])

    def _by_shard(self, ids: list[str]) -> dict[int, list[int]]:
        """Shard -> positions in ``ids`` of the ids it owns."""
        groups: dict[int, list[int]] = {}
        for r, doc_id in enumerate(ids):
            groups.setdefault(col.shard_of(doc_id, len(self.shards)), []).append(r)
        return groups

    def _present(self, ids: list[str]) -> set[str]:
        """The ids of ``ids`` some shard holds."""
        groups = self._by_shard(ids)
        found = self.shards.call("present", [(s, ([ids[r] for r in rows],), {}) for s, rows in groups.items()])
        return {doc_id for part in found for doc_id in part}

    def _refuse_taken(self, ids: list[str], replace: bool) -> None:
        if replace:
            return
        taken = self._present(ids)
        if taken:
            first = next(i for i in ids if i in taken)
            raise AlreadyExistsError(f"id {first!r} is already in the collection ({len(taken)} of the ids are): "
                                     "remove it first, upsert, or pick new ids.")

    def _shard_manifest(self) -> dict:
        return {"passages": self.manifest["passages"], "pool_factor": self.manifest["pool_factor"]}

    def _writing(self, written: list[str]):
        """The collection's lock for one write; after it, the BM25 and state of what the shards hold."""
        return _Write(self, written)

    def _recover(self) -> None:
        """Republish the BM25 and state when shards moved on since the last state (a killed write)."""
        if self.lexical.stale(self._shard_versions()):
            with self._writing([]):
                pass

    def _publish(self, written: list[str]) -> None:
        ids, texts = self._all_texts()
        previous = list(self.lexical.current(lambda: (ids, texts)).ids) if self.manifest["hybrid"] else []
        order = insertion_order(previous, ids, written) if self.manifest["hybrid"] else []
        self.lexical.publish(self._shard_versions(), order, dict(zip(ids, texts)))

    def __repr__(self) -> str:
        return f"ShardedRetriever({str(self.folder)!r}, shards={len(self.shards)}, kind={self.manifest['kind']!r})"


class _Write:
    """``with _Write(collection, ids)``: the collection's writer lock held for the block; when the
    block ends with shards changed (also when it fails half way) the BM25 and state are republished
    from what the shards hold."""

    def __init__(self, collection: ShardedRetriever, written: list[str]):
        self.collection, self.written = collection, written
        self.lock = writer_lock(collection.folder, collection.lock_timeout)

    def __enter__(self):
        self.lock.__enter__()
        self.before = self.collection._shard_versions()
        return self

    def __exit__(self, *exc):
        try:
            versions = self.collection._shard_versions()
            if versions != self.before or self.collection.lexical.stale(versions):
                self.collection._publish(self.written)
        finally:
            self.lock.__exit__(*exc)


def merge_hits(lists: list[list[Hit]], depth: int) -> list[Hit]:
    """The best ``depth`` hits of several best-first lists, by score (ties: earlier list first)."""
    merged = [hit for hits in lists for hit in hits]
    merged.sort(key=lambda h: -h.score)
    return merged[:depth]
