"""The shards of a sharded collection in this process (``LocalShards``), the calls every shard
answers (``run``: a ``Retriever`` method or one of ``EXTRA``), and the query cache that lets shards
searching the same queries in one fan-out encode them once. ``maxsim.distributed.remote`` keeps
the same shards in Ray actors behind the same ``call``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from maxsim.distributed.codec import adopt_codec
from maxsim.errors import NotFoundError
from maxsim.search.hits import Document, Hit
from maxsim.search.prf import explain_expansion


def present(retriever, ids: list[str]) -> list[str]:
    """The ids of ``ids`` the shard holds."""
    with retriever.store.read() as snap:
        return snap.present(ids)


def matching_ids(retriever, filter: dict, subset) -> list[str]:
    """Ids of the shard's documents whose metadata matches ``filter`` (within ``subset``)."""
    if subset == []:
        return []
    with retriever.store.read() as snap:
        if subset is not None:
            snap.require(subset)
        return snap.filter_ids(filter, subset)


def listing(retriever, filter: dict | None, limit: int) -> list[Document]:
    """The shard's first ``limit`` documents matching ``filter`` in id order (no page-size cap: the
    collection merges the shards' lists, then pages)."""
    with retriever.store.read() as snap:
        return [Document(*row) for row in snap.listing(filter, limit, 0)]


def all_texts(retriever) -> tuple[list[str], list[str]]:
    with retriever.store.read() as snap:
        return snap.all_texts()


def best_hit(retriever, query: str, doc_id: str) -> Hit | None:
    """``doc_id``'s hit for ``query`` with its best passage, or None when the shard no longer holds it."""
    try:
        return retriever.search([query], k=1, subset=[doc_id])[0][0]
    except NotFoundError:
        return None


def search_vectors(retriever, queries: list[str], vectors: list, options) -> list[list[Hit]]:
    return retriever.search_vectors(queries, vectors, options)


def explain_expanded(retriever, query: str, doc_id: str, expansion) -> dict:
    """``retriever.explain`` of ``doc_id``, with what the collection's PRF ``expansion`` matched in it."""
    out = retriever.explain(query, doc_id)
    if expansion is not None:
        out["expansion"] = explain_expansion(retriever.model, expansion, out["passage"])
    return out


def current_version(retriever) -> int:
    return retriever.version


EXTRA = {fn.__name__: fn for fn in (present, matching_ids, listing, all_texts, best_hit, search_vectors,
                                    explain_expanded, current_version, adopt_codec)}


def run(method: str, retriever, args: tuple, kwargs: dict):
    """``retriever.method(*args, **kwargs)``, or the ``EXTRA`` function ``method`` of it."""
    if method in EXTRA:
        return EXTRA[method](retriever, *args, **kwargs)
    return getattr(retriever, method)(*args, **kwargs)


class LocalShards:
    """Shard retrievers in this process; ``call`` runs the calls on a thread per shard."""

    def __init__(self, retrievers: list):
        self.retrievers = retrievers
        self.pool = ThreadPoolExecutor(max(1, len(retrievers)), thread_name_prefix="maxsim-shard")

    def __len__(self) -> int:
        return len(self.retrievers)

    def call(self, method: str, calls: list[tuple[int, tuple, dict]]) -> list:
        """``method(*args, **kwargs)`` on shard i for each ``(i, args, kwargs)``, in parallel; results in order."""
        futures = [self.pool.submit(run, method, self.retrievers[i], args, kwargs) for i, args, kwargs in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for r in self.retrievers:
            r.close()


