"""``Collection``: the one interface of a searchable, writable set of documents.

A retriever folder (``maxsim.search.Retriever``) and a sharded collection
(``maxsim.distributed.ShardedRetriever``) implement it; ``maxsim.open(path)`` returns the right one,
and the command line, the service, the MCP server, the integrations and evaluation only use this.

A collection holds texts or pages (page images), decided by its model (``modality``: "text" or
"image"). Writes to a page collection pass ``pages=``: PIL images, image files,
``maxsim.io.pages.PageRef``, or a ``PageCorpus`` (``maxsim.io.read_pages``); ``texts`` are then the
pages' texts for BM25. Searches are text queries either way; ``explain`` of a page adds its
heatmaps, and ``page_image`` returns the stored page (``maxsim.search.pages``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from maxsim.search.hits import Document, Hit

if TYPE_CHECKING:
    from maxsim.search.pages import PageImage

LIST_LIMIT = 100  # default page size of ``documents``


@runtime_checkable
class Collection(Protocol):
    """Documents with a model and an index. Reads see one committed version; writes commit a new one."""

    folder: Path
    modality: str  # "text" or "image" (pages)

    def search(self, query: str | Sequence[str], k: int = 10, hybrid: bool = False, fusion: str = "rrf",
               filter: dict | None = None, subset: Sequence[str] | None = None) -> list[list[Hit]]:
        """Per query, up to ``k`` hits best first (a single string still gives a list of one list)."""

    def get(self, doc_id: str) -> Document:
        """The document ``doc_id`` (``NotFoundError`` if unknown)."""

    def documents(self, filter: dict | None = None, limit: int = LIST_LIMIT, offset: int = 0) -> list[Document]:
        """The documents matching ``filter`` (all when None), in id order, ``limit`` from ``offset``."""

    def explain(self, query: str, doc_id: str) -> dict:
        """Why ``doc_id`` scores what it does for ``query`` (its best passage's MaxSim alignment; a
        page: also ``page``, its heatmaps per query token)."""

    def page_image(self, doc_id: str) -> PageImage:
        """The stored image of the page ``doc_id`` (``NotFoundError`` if unknown or in a text collection)."""

    def add(self, texts: Sequence[str] | None = None, ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None, batch_size: int | None = None,
            show_progress_bar: bool | None = None, *, pages: Sequence | None = None) -> list[str]:
        """Encode and add documents (texts, or ``pages`` in a page collection), all or nothing
        (``AlreadyExistsError`` for an id present)."""

    def upsert(self, texts: Sequence[str] | None = None, ids: Sequence[str] | None = None,
               metadata: Sequence[dict | None] | None = None, batch_size: int | None = None,
               show_progress_bar: bool | None = None, *, pages: Sequence | None = None) -> list[str]:
        """Add documents (or ``pages``), replacing those whose id exists."""

    def remove(self, ids: Sequence[str]) -> None:
        """Remove documents by id (``NotFoundError`` for an unknown id, changing nothing)."""

    def stats(self) -> dict:
        """Counts (documents, passages, tokens), bytes on disk, version, index kind, model, dim, modality, hybrid."""

    def __len__(self) -> int:
        """Number of documents."""

    @property
    def version(self) -> int:
        """The newest committed version (grows with every write)."""

    def close(self) -> None:
        """Release files, connections and workers."""
