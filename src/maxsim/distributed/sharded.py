"""``ShardedRetriever``: a sharded collection searched as one ``Retriever`` (same read API).

A search fans out to every shard (threads in this process, or Ray actors: ``maxsim.distributed.
remote``) and merges: dense hits by MaxSim score (each shard answers its own top ``depth``, so the
merged top ``depth`` is the collection's); for ``hybrid`` the collection's BM25 (built over the union
of the shards, so document frequencies and the average length are the collection's) ranks the
lexical side and the same fusion as ``Retriever`` combines both. A document found by BM25 alone gets
its best passage from its shard. So the answer is the one a single index of the same documents gives.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maxsim.distributed import collection as col
from maxsim.errors import InvalidInputError
from maxsim.index.checks import check_k
from maxsim.search.fusion import FUSION_DEPTH, METHODS, fuse
from maxsim.search.inputs import check_ids, check_queries

_RAY = {"address": None}  # set by serve_shards_on_ray: where Retriever.open puts the shards


def serve_shards_on_ray(address: str | None = "auto") -> None:
    """Make ``ShardedRetriever.open`` (and so ``Retriever.open``) keep shards in Ray actors on the
    cluster at ``address`` (None: this process again)."""
    _RAY["address"] = address


class ShardedRetriever:
    """Read access to a sharded collection (see ``collection``). Open with ``ShardedRetriever.open``
    or ``Retriever.open``; writes go through ``build_collection`` (``maxsim index --ray``)."""

    def __init__(self, folder: Path, manifest: dict, shards, model=None):
        self.folder, self.manifest, self.shards = Path(folder), manifest, shards
        self._model = model
        self._bm25 = None
        self._bm25_lock = threading.Lock()

    @classmethod
    def open(cls, folder, model=None, device: str | None = None, dtype: str | None = None,
             ray_address: str | None = None) -> ShardedRetriever:
        """Open the collection in ``folder``; ``model=None`` loads the one it was built with (once, shared
        by the shards). ``ray_address`` (or ``serve_shards_on_ray``): keep each shard in a Ray actor."""
        folder = Path(folder)
        body = col.read_manifest(folder)
        col.check_complete(folder, body)
        address = ray_address or _RAY["address"]
        if address:
            from maxsim.distributed.remote import RayShards

            return cls(folder, body, RayShards(folder, body, address, device, dtype), model)
        from maxsim.models.loading import load_model
        from maxsim.search import Retriever

        model = model if model is not None else load_model(body["model"], device, dtype)
        shared = QueryCache(model)
        shards = LocalShards([Retriever.open(folder / name, model=shared) for name in body["shard_folders"]])
        return cls(folder, body, shards, model)

    @property
    def model(self):
        if self._model is None:
            from maxsim.models.loading import load_model

            self._model = load_model(self.manifest["model"])
        return self._model

    def close(self) -> None:
        self.shards.close()

    def __enter__(self) -> ShardedRetriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------------------------
    def search(self, query, k: int = 10, hybrid: bool = False, fusion: str = "rrf", filter: dict | None = None,
               subset=None) -> list[list[dict]]:
        """As ``Retriever.search``: per query up to ``k`` hits ``{"id", "score", "text", "metadata",
        "passage"}`` best first, over every shard."""
        queries = check_queries(query)
        k = check_k(k)
        if hybrid and not self.manifest["hybrid"]:
            raise InvalidInputError(f"{self.folder} keeps no BM25 index: build it with hybrid on to search hybrid.")
        if fusion not in METHODS or fusion == "convex":  # convex needs the query vectors, encoded in the shards
            raise InvalidInputError(f"fusion must be 'rrf' or 'score' on a sharded collection, got {fusion!r}.")
        parts = self._split(None if subset is None else check_ids(subset, "subset"))
        active = [i for i, part in enumerate(parts) if part is None or part]
        if not active:
            return [[] for _ in queries]
        depth = max(k, FUSION_DEPTH) if hybrid else k
        answers = self.shards.call("search", [(i, (queries,), {"k": depth, "filter": filter, "subset": parts[i]})
                                              for i in active])
        dense = [merge_hits([answer[qi] for answer in answers], depth) for qi in range(len(queries))]
        if not hybrid:
            return [hits[:k] for hits in dense]
        allowed = self._allowed(filter, subset, active, parts)
        lexical = self.bm25.top(queries, depth, allowed)
        return [self._fused(q, hits, sparse, k, fusion) for q, hits, sparse in zip(queries, dense, lexical)]

    def _split(self, subset) -> list:
        """Per shard its part of ``subset`` (None for every shard when there is no subset)."""
        n = len(self.shards)
        if subset is None:
            return [None] * n
        parts: list[list[str]] = [[] for _ in range(n)]
        for doc_id in subset:
            parts[col.shard_of(doc_id, n)].append(doc_id)
        return parts

    def _allowed(self, filter, subset, active, parts):
        """The ids BM25 may return: those matching ``filter`` within ``subset`` (None: all)."""
        if filter is None:
            return None if subset is None else list(subset)
        found = self.shards.call("allowed_ids", [(i, (filter, parts[i]), {}) for i in active])
        return [doc_id for ids in found for doc_id in ids]

    def _fused(self, query: str, dense: list[dict], sparse: list, k: int, fusion: str) -> list[dict]:
        fused = fuse([[(h["id"], h["score"]) for h in dense], sparse], fusion)[:k]
        by_id = {h["id"]: h for h in dense}
        lexical_only = [doc_id for doc_id, _ in fused if doc_id not in by_id]
        calls = [(col.shard_of(doc_id, len(self.shards)), ([query],), {"k": 1, "subset": [doc_id]})
                 for doc_id in lexical_only]
        for answer in self.shards.call("search", calls):  # their best passage, from their shard
            by_id[answer[0][0]["id"]] = answer[0][0]
        return [{**by_id[doc_id], "score": float(score)} for doc_id, score in fused]

    @property
    def bm25(self):
        """The collection's BM25 (``maxsim.search.bm25.BM25Index``), loaded or rebuilt once."""
        with self._bm25_lock:
            if self._bm25 is None:
                self._bm25 = load_bm25(self.folder, self.shards)
            return self._bm25

    def _route(self, doc_id) -> int:
        if not isinstance(doc_id, str):
            raise InvalidInputError(f"an id is a string, got {type(doc_id).__name__}.")
        return col.shard_of(doc_id, len(self.shards))

    def get(self, doc_id: str) -> dict:
        """``{"id", "text", "metadata"}`` of a document (``NotFoundError`` if unknown)."""
        return self.shards.call("get", [(self._route(doc_id), (doc_id,), {})])[0]

    def explain(self, query: str, doc_id: str) -> dict:
        """As ``Retriever.explain``, answered by the document's shard."""
        return self.shards.call("explain", [(self._route(doc_id), (query, doc_id), {})])[0]

    def __len__(self) -> int:
        return sum(self.shards.call("__len__", [(i, (), {}) for i in range(len(self.shards))]))

    @property
    def version(self) -> int:
        """Sum of the shards' versions: grows whenever any shard commits."""
        return sum(s["version"] for s in self._shard_stats())

    def _shard_stats(self) -> list[dict]:
        return self.shards.call("stats", [(i, (), {}) for i in range(len(self.shards))])

    def stats(self) -> dict:
        """As ``Retriever.stats`` summed over the shards, plus ``shards`` and ``shard_documents``."""
        per = self._shard_stats()
        size = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())
        total = {key: sum(s[key] for s in per) for key in ("documents", "passages", "tokens", "version")}
        return {**total, "bytes_on_disk": size, "index": self.manifest["index"], "model": self.manifest["model"],
                "dim": per[0]["dim"], "hybrid": self.manifest["hybrid"], "pool_factor": per[0]["pool_factor"],
                "shards": len(per), "shard_documents": [s["documents"] for s in per]}

    def add(self, *args, **kwargs):
        raise InvalidInputError(f"{self.folder} is a sharded collection, read-only here: rebuild it with "
                                "`maxsim index INPUT --output DIR --ray` to change it.")

    upsert = remove = add

    def __repr__(self) -> str:
        return f"ShardedRetriever({str(self.folder)!r}, shards={len(self.shards)}, index={self.manifest['index']!r})"


def merge_hits(lists: list[list[dict]], depth: int) -> list[dict]:
    """The best ``depth`` hits of several best-first lists, by score (ties: earlier list first)."""
    merged = [hit for hits in lists for hit in hits]
    merged.sort(key=lambda h: -h["score"])
    return merged[:depth]


def allowed_ids(retriever, filter: dict, subset) -> list[str]:
    """Ids of ``retriever`` whose metadata matches ``filter`` (within ``subset``)."""
    if not isinstance(filter, dict):
        raise InvalidInputError(f"filter must be a dict such as {{'lang': 'en'}}, got {type(filter).__name__}.")
    if subset == []:
        return []
    with retriever.store.read() as snap:
        if subset is not None:
            snap.require(subset)
        keys = snap.filter_keys(filter, subset)
        return sorted({doc for doc, *_ in snap.passages(keys).values()})


def all_texts(retriever) -> tuple[list[str], list[str]]:
    with retriever.store.read() as snap:
        return snap.all_texts()


def load_bm25(folder: Path, shards):
    """The saved collection BM25, or one rebuilt from the shards' texts in the collection's id order."""
    from maxsim.search.bm25 import BM25Index

    index = BM25Index.load(folder / col.BM25)
    if index is not None:
        return index
    texts = {}
    for ids, docs in shards.call("all_texts", [(i, (), {}) for i in range(len(shards))]):
        texts.update(zip(ids, docs))
    ids = [doc_id for doc_id in col.read_ids(folder) if doc_id in texts]
    return BM25Index.build(ids, [texts[doc_id] for doc_id in ids])


class LocalShards:
    """Shard retrievers in this process; ``call`` runs the calls on a thread per shard."""

    EXTRA = {"allowed_ids": allowed_ids, "all_texts": all_texts}

    def __init__(self, retrievers: list):
        self.retrievers = retrievers
        self.pool = ThreadPoolExecutor(max(1, len(retrievers)), thread_name_prefix="maxsim-shard")

    def __len__(self) -> int:
        return len(self.retrievers)

    def call(self, method: str, calls: list[tuple[int, tuple, dict]]) -> list:
        """``method(*args, **kwargs)`` on shard i for each ``(i, args, kwargs)``, in parallel; results in order."""
        futures = [self.pool.submit(self.run, method, self.retrievers[i], args, kwargs) for i, args, kwargs in calls]
        return [f.result() for f in futures]

    @classmethod
    def run(cls, method: str, retriever, args: tuple, kwargs: dict):
        """``retriever.method(*args, **kwargs)``, or one of the EXTRA functions of a retriever."""
        if method in cls.EXTRA:
            return cls.EXTRA[method](retriever, *args, **kwargs)
        return getattr(retriever, method)(*args, **kwargs)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for r in self.retrievers:
            r.close()


class QueryCache:
    """A model whose ``encode_query`` remembers its last few answers, so that shards searching the
    same queries in one fan-out encode them once; everything else is the model's."""

    SIZE = 64

    def __init__(self, model):
        self._model, self._lock, self._memory = model, threading.Lock(), OrderedDict()

    def encode_query(self, texts, **kwargs):
        key = (tuple(texts), tuple(sorted(kwargs.items())))
        with self._lock:
            if key not in self._memory:
                vectors = self._model.encode_query(list(texts), **kwargs)
                for text, v in zip(texts, vectors):  # single queries too (a hybrid's best passages)
                    self._remember(((text,), key[1]), [v])
                self._remember(key, vectors)
            self._memory.move_to_end(key)
            return self._memory[key]

    def _remember(self, key, vectors) -> None:
        self._memory[key] = vectors
        while len(self._memory) > self.SIZE:
            self._memory.popitem(last=False)

    def __call__(self, *args, **kwargs):
        return self._model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)
