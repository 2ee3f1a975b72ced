"""Pages as documents: image files (.png, .jpg, .jpeg, .webp) and the pages of PDFs, rendered with
pypdfium2, read from a folder or a single file.

Each page is one document: its id is the file's path relative to the folder (a single file: its
name), with ``#p<n>`` for page n (from 1) of a PDF (``report.pdf#p3``); its metadata is
``{"file": relative path, "page": n}`` (1 for an image). ``read_pages`` checks every file (decodes
each image, opens each PDF and counts its pages) and returns a ``PageCorpus``: a ``Corpus`` (ids,
texts, metadata, skipped) with a ``PageRef`` per page that decodes or renders it when asked. The text
of a page is its PDF text layer with ``text=True`` (for hybrid BM25; "" for images and scanned
pages), else "". Hidden files, other types, empty files, damaged or encrypted PDFs and images PIL
cannot decode are skipped and named in ``skipped`` (``strict=True``: CorpusError at the first file
that cannot be read, empty files excepted, as for text folders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from maxsim.io.documents import Corpus, CorpusError, Skipped
from maxsim.io.files import Unreadable
from maxsim.io.folder import candidate_files

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PAGE_SUFFIXES = (*IMAGE_SUFFIXES, ".pdf")
DPI = 144  # a US-letter page renders 1224 x 1584: above every page model's input size
MAX_SIDE = 4096  # pixels: larger PDF pages (posters, maps) render at a lower dpi
PDF_POINTS = 72  # PDF user space units per inch


@dataclass(frozen=True)
class PageRef:
    """One page: the image file ``path``, or page ``page`` (from 1) of the PDF ``path`` rendered at
    ``dpi``; ``size`` (width, height) in pixels as it will be decoded or rendered."""

    path: Path
    page: int = 1
    dpi: float | None = None
    size: tuple[int, int] = (0, 0)

    @classmethod
    def of_image(cls, path: str | os.PathLike) -> PageRef:
        """An image file's page, its size read from the header; Unreadable if PIL cannot open it."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                return cls(Path(path), size=image.size)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            raise Unreadable("undecodable image", f"{type(error).__name__}: {error}") from None

    def image(self):
        """The page as an RGB PIL image; CorpusError naming the file if it can no longer be read."""
        return load_images([self])[0]


def open_image(path: str | os.PathLike):
    """The image file ``path`` fully decoded, turned upright per its EXIF orientation, as RGB.
    Unreadable (reason "undecodable image") when PIL cannot decode it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise Unreadable("undecodable image", f"{type(error).__name__}: {error}") from None


def load_images(refs: list[PageRef]) -> list:
    """The RGB PIL images of ``refs``, each PDF opened once; CorpusError naming the first failure."""
    images: list = [None] * len(refs)
    by_pdf: dict[Path, list[int]] = {}
    for i, ref in enumerate(refs):
        if ref.dpi is None:
            images[i] = _or_error(ref, open_image, ref.path)
        else:
            by_pdf.setdefault(ref.path, []).append(i)
    for path, rows in by_pdf.items():
        pdf = _or_error(refs[rows[0]], _open_pdf, path)
        try:
            for i in rows:
                images[i] = _or_error(refs[i], _render, pdf, refs[i].page, refs[i].dpi)
        finally:
            pdf.close()
    return images


def _or_error(ref: PageRef, read, *args):
    """``read(*args)``; an Unreadable becomes a CorpusError naming the page."""
    try:
        return read(*args)
    except Unreadable as error:
        where = f"{ref.path} page {ref.page}" if ref.dpi is not None else str(ref.path)
        raise CorpusError(f"{where}: {error.reason} ({error.detail}); the file changed or is damaged: "
                          "fix or remove it.") from None


@dataclass
class PageCorpus(Corpus):
    """A ``Corpus`` of pages: ``pages[i]`` renders document ``i``."""

    pages: list[PageRef] = field(default_factory=list)

    def add(self, doc_id: str, ref: PageRef, rel: str, text: str) -> None:
        self.append(doc_id, text, {"file": rel, "page": ref.page}, str(ref.path))
        self.pages.append(ref)


def read_pages(path: str | os.PathLike, dpi: float = DPI, text: bool = False, strict: bool = False) -> PageCorpus:
    """The pages of a folder (every page file under it, hidden entries skipped) or of one page file."""
    path = Path(path)
    if not isinstance(dpi, (int, float)) or isinstance(dpi, bool) or not 0 < dpi <= 1200:
        raise CorpusError(f"dpi must be a number in (0, 1200], got {dpi!r}.")
    corpus = PageCorpus()
    if path.is_dir():
        files = [(file, file.relative_to(path).as_posix()) for file in candidate_files(path, corpus, PAGE_SUFFIXES)]
    elif path.is_file() and path.suffix.lower() in PAGE_SUFFIXES:
        files = [(path, path.name)]
    else:
        raise CorpusError(f"{path}: not a folder or a page file ({', '.join(PAGE_SUFFIXES)}).")
    for file, rel in files:
        try:
            pages = _file_pages(file, dpi, text)
        except Unreadable as error:
            if strict and error.reason != "empty":
                raise CorpusError(f"{file}: {error.reason} ({error.detail}); fix or remove the file, "
                                  "or run without --strict to skip it.") from None
            corpus.skipped.append(Skipped(rel, error.reason, error.detail))
            continue
        for ref, page_text in pages:
            corpus.add(f"{rel}#p{ref.page}" if ref.dpi is not None else rel, ref, rel, page_text)
    if not len(corpus):
        why = f" (skipped {dict(corpus.skip_counts())})" if corpus.skipped else ""
        raise CorpusError(f"{path} holds no pages{why}; pass a folder of {'/'.join(PAGE_SUFFIXES)} files.")
    return corpus


def _file_pages(path: Path, dpi: float, text: bool) -> list[tuple[PageRef, str]]:
    """(page, text) of every page of one file; Unreadable when it has none."""
    try:
        if path.stat().st_size == 0:
            raise Unreadable("empty", "0 bytes")
    except OSError as error:
        raise Unreadable("unreadable", error.strerror or str(error)) from None
    if path.suffix.lower() != ".pdf":
        image = open_image(path)
        return [(PageRef(path, size=image.size), "")]
    pdf = _open_pdf(path)
    try:
        if len(pdf) == 0:
            raise Unreadable("empty PDF", "0 pages")
        return [(PageRef(path, i + 1, dpi, _rendered_size(pdf.get_page_size(i), dpi)),
                 _page_text(pdf[i]) if text else "") for i in range(len(pdf))]
    finally:
        pdf.close()


def _open_pdf(path: Path):
    try:
        import pypdfium2
    except ImportError:
        raise Unreadable("PDF support not installed", "pip install 'maxsim[pages]' (pypdfium2)") from None
    try:
        return pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as error:
        reason = "encrypted PDF" if "password" in str(error).lower() else "damaged PDF"
        raise Unreadable(reason, str(error)) from None


def _scale(size_points: tuple[float, float], dpi: float) -> float:
    """Render scale (pixels per point): ``dpi`` / 72, lowered so that no side exceeds MAX_SIDE."""
    return min(dpi / PDF_POINTS, MAX_SIDE / max(max(size_points), 1.0))


def _rendered_size(size_points: tuple[float, float], dpi: float) -> tuple[int, int]:
    scale = _scale(size_points, dpi)
    return round(size_points[0] * scale), round(size_points[1] * scale)


def _render(pdf, number: int, dpi: float):
    """Page ``number`` (from 1) of the open PDF ``pdf`` as an RGB PIL image."""
    import pypdfium2

    try:
        page = pdf[number - 1]
        return page.render(scale=_scale(page.get_size(), dpi)).to_pil().convert("RGB")
    except (pypdfium2.PdfiumError, IndexError) as error:
        raise Unreadable("damaged PDF page", str(error)) from None


def _page_text(page) -> str:
    """The text layer of a PDF page (line breaks as "\\n"), "" when it has none."""
    textpage = page.get_textpage()
    try:
        return textpage.get_text_range().replace("\r\n", "\n").strip()
    finally:
        textpage.close()
