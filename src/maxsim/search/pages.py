"""Pages as documents of a retriever folder whose model encodes page images (``model.modality ==
"image"``: ColPali, ColQwen2, ColModernVBert).

A page is one document and one passage: its vectors go to the index like a text's; its ``text`` is
what BM25 reads (a PDF page's text layer, "" for an image); the rest lives here:

- ``pages/<sha256>.webp``: a copy of the page image, downscaled to at most ``IMAGE_SIDE`` pixels a
  side, content-addressed (the same page stored twice is one file). Written under the folder's
  lock before the commit that names it; a file no kept version names is deleted by the commit
  that makes it unneeded (``collect``), as the index's segment files are;
- the ``pages`` table of ``state.sqlite3``: per document its image file, the copy's size and its
  patch grid (``PatchGrid``: rows, cols, cells as int32 and patch flags, zlib-compressed), deleted
  with the document (a trigger), which records the dropped image in ``page_drops`` with the last
  version that named it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from maxsim.errors import CorruptedError, InvalidInputError
from maxsim.index.storage import fsync_dir
from maxsim.io.files import Unreadable
from maxsim.io.pages import PageCorpus, PageRef, load_images, open_image
from maxsim.models.pages import PatchGrid
from maxsim.search.inputs import check_texts
from maxsim.search.passages import Encoded

FOLDER = "pages"
IMAGE_SIDE = 1024  # pixels: the longest side of a stored page copy (thumbnails and heatmaps on screen)
IMAGE_QUALITY = 80  # WebP quality of the copies
MEDIA_TYPE = "image/webp"
SCHEMA = """
CREATE TABLE pages (doc TEXT PRIMARY KEY, image TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
                    rows INTEGER NOT NULL, cols INTEGER NOT NULL, vectors INTEGER NOT NULL, cells BLOB NOT NULL,
                    patches BLOB NOT NULL);
CREATE TABLE page_drops (image TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TRIGGER page_of_document AFTER DELETE ON documents BEGIN DELETE FROM pages WHERE doc = old.id; END;
CREATE TRIGGER page_dropped AFTER DELETE ON pages
    BEGIN INSERT INTO page_drops VALUES (old.image, (SELECT MAX(version) FROM commits)); END;
"""


@dataclass
class EncodedPages(Encoded):
    """``Encoded`` pages (one passage each) with, per page, its ``grids`` and ``images`` (the stored
    copy: WebP bytes)."""

    grids: list[PatchGrid] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)

    def select(self, documents: list[int]) -> EncodedPages:
        return EncodedPages([self.spans[d] for d in documents], [self.vectors[d] for d in documents],
                            [self.tokens[d] for d in documents], [self.grids[d] for d in documents],
                            [self.images[d] for d in documents])


@dataclass(frozen=True)
class PageImage:
    """A stored page image: its bytes, ``media_type`` and ``etag`` (its content hash)."""

    data: bytes
    media_type: str
    etag: str


def checked_pages(pages, texts, ids, metadata) -> tuple[list, list[str], list | None, list | None]:
    """The pages of an add (a list of pages, or a ``PageCorpus`` whose ids, texts and metadata fill
    those not given) with their texts, one per page ("" each by default)."""
    if isinstance(pages, PageCorpus):
        texts = pages.texts if texts is None else texts
        ids = pages.ids if ids is None else ids
        metadata = pages.metadata if metadata is None else metadata
        pages = pages.pages
    if isinstance(pages, (str, os.PathLike, PageRef)) or _is_image(pages) or not hasattr(pages, "__iter__"):
        raise InvalidInputError(f"pages must be a list of pages (PIL images, image files, PageRefs) or a "
                                f"PageCorpus (maxsim.io.read_pages), not {type(pages).__name__}.")
    pages = list(pages)
    texts = [""] * len(pages) if texts is None else check_texts(texts)
    if len(texts) != len(pages):
        raise InvalidInputError(f"got {len(texts)} texts for {len(pages)} pages: pass one text (or \"\") per page.")
    return pages, texts, ids, metadata


def encode_pages(model, pages: list, texts: list[str], pool_factor: int, batch_size: int,
                 show_progress_bar: bool | None) -> EncodedPages:
    """Decode or render ``pages`` one batch at a time, encode them (``model.encode_pages``, pooled by
    ``pool_factor``) and make their stored copies."""
    if batch_size <= 0:
        raise InvalidInputError(f"batch_size must be positive, got {batch_size}.")
    out = EncodedPages([], [], [])
    starts = range(0, len(pages), batch_size)
    show = len(starts) > 8 and sys.stderr.isatty() if show_progress_bar is None else show_progress_bar
    for start in tqdm(starts, desc="encode pages", disable=not show):
        images = page_images(pages[start: start + batch_size], start)
        encoded = model.encode_pages(images, batch_size=len(images), show_progress_bar=False, pool_factor=pool_factor)
        for page, image, text in zip(encoded, images, texts[start: start + batch_size]):
            out.spans.append([(0, len(text))])
            out.vectors.append(page.vectors)
            out.tokens.append(len(page.vectors))
            out.grids.append(page.grid)
            out.images.append(stored_copy(image))
    return out


def page_images(items: list, offset: int = 0) -> list:
    """RGB PIL images of ``items`` (PIL images, image file paths, ``PageRef``s; PDFs opened once);
    ``InvalidInputError`` naming ``pages[i]`` for anything else."""
    images: list = [None] * len(items)
    refs = []
    for i, item in enumerate(items):
        if isinstance(item, PageRef):
            refs.append(i)
        elif _is_image(item):
            images[i] = item.convert("RGB")
        elif isinstance(item, (str, os.PathLike)):
            images[i] = _image_file(item, offset + i)
        else:
            raise InvalidInputError(f"pages[{offset + i}] is {type(item).__name__}: a page collection takes PIL "
                                    "images, image files or maxsim.io.pages.PageRef (read PDFs with read_pages).")
    for i, image in zip(refs, load_images([items[i] for i in refs])):
        images[i] = image
    return images


def _image_file(path, index: int):
    if str(path).lower().endswith(".pdf"):
        raise InvalidInputError(f"pages[{index}] = {str(path)!r} is a PDF: pass its pages "
                                "(maxsim.io.read_pages(path).pages, or the PageCorpus itself).")
    try:
        return open_image(path)
    except Unreadable as error:
        raise InvalidInputError(f"pages[{index}] = {str(path)!r}: {error.reason} ({error.detail}); pass an image "
                                "file PIL can decode.") from None


def _is_image(item) -> bool:
    from PIL import Image

    return isinstance(item, Image.Image)


def stored_copy(image) -> bytes:
    """The WebP bytes of ``image`` downscaled to at most ``IMAGE_SIDE`` pixels a side."""
    image = image.copy()
    image.thumbnail((IMAGE_SIDE, IMAGE_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=IMAGE_QUALITY)
    return buffer.getvalue()


def image_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() + ".webp"


class PageStore:
    """The page images and grids of the retriever folder ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / FOLDER

    def insert(self, snap, ids: list[str], encoded: EncodedPages) -> None:
        """Write the image copies (fsynced) and the rows of ``ids`` (inside the write transaction)."""
        from PIL import Image

        self.folder.mkdir(exist_ok=True)
        rows = []
        for doc_id, grid, data in zip(ids, encoded.grids, encoded.images):
            name = image_name(data)
            if not (self.folder / name).is_file():
                _write_file(self.folder / name, data)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
            rows.append((doc_id, name, width, height, grid.rows, grid.cols, len(grid.patches),
                         zlib.compress(grid.cells.astype("<i4").tobytes()),
                         zlib.compress(np.packbits(grid.patches).tobytes())))
        fsync_dir(self.folder)
        snap.conn.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def grid(self, snap, doc_id: str) -> PatchGrid:
        rows, cols, vectors, cells, patches = self._row(snap, doc_id, "rows, cols, vectors, cells, patches")
        cells = np.frombuffer(zlib.decompress(cells), dtype="<i4").reshape(rows, cols).astype(np.int32)
        flags = np.unpackbits(np.frombuffer(zlib.decompress(patches), dtype=np.uint8), count=vectors).astype(bool)
        return PatchGrid(cells, flags)

    def image(self, snap, doc_id: str) -> PageImage | None:
        """The stored copy of ``doc_id``'s page (None when a newer version collected its file)."""
        (name,) = self._row(snap, doc_id, "image")
        try:
            data = (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None
        if image_name(data) != name:
            raise CorruptedError(f"{self.folder / name}: the page image of {doc_id!r} is damaged (its content does "
                                 "not match its name); re-add the page with upsert.")
        return PageImage(data, MEDIA_TYPE, name.split(".")[0])

    def _row(self, snap, doc_id: str, columns: str) -> tuple:
        row = snap.conn.execute(f"SELECT {columns} FROM pages WHERE doc = ?", (doc_id,)).fetchone()
        if row is None:
            snap.require([doc_id])  # NotFoundError for an unknown id
            raise CorruptedError(f"{snap.path} holds document {doc_id!r} without its page: the store is damaged; "
                                 "re-add the page with upsert.")
        return row

    def collect(self, snap, below: int) -> None:
        """Delete the image files that neither the folder's documents nor a version from ``below`` on
        name (inside the write transaction, before it commits): dropped copies, and files of writes
        that died before their commit."""
        snap.conn.execute("DELETE FROM page_drops WHERE version < ?", (below,))
        keep = {r[0] for r in snap.conn.execute("SELECT image FROM pages UNION SELECT image FROM page_drops")}
        if not self.folder.is_dir():
            return
        for entry in os.scandir(self.folder):
            if entry.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def bytes(self) -> int:
        """Bytes of the stored page images."""
        return sum(entry.stat().st_size for entry in os.scandir(self.folder)) if self.folder.is_dir() else 0


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_kind(where, modality: str, pages, embeddings) -> None:
    """Refuse pages for a text collection, and texts alone (no ``pages``, no encoded pages) for a page
    collection (``modality`` "image")."""
    if modality == "text" and pages is not None:
        raise InvalidInputError(f"{where} is a text collection: it takes texts, not pages. A collection is either "
                                "text or pages, decided by its model: index pages into a collection made with a page "
                                "model (ColPali, ColQwen2, ColModernVBert).")
    if modality == "image" and pages is None and not isinstance(embeddings, EncodedPages):
        raise InvalidInputError(f"{where} is a page collection: pass its pages with pages=... (PIL images, image "
                                "files, maxsim.io.pages.PageRef or a PageCorpus from read_pages); texts are then the "
                                "pages' texts for BM25. Texts go into a collection made with a text model.")
