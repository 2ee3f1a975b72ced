"""The text of one file of a folder: plain text (.txt, .md), HTML (text only) and PDF (pypdf).

Each reader returns ``(text, metadata, encoding)`` or raises ``Unreadable(reason, detail)``;
``encoding`` is None for UTF-8 and the detected encoding of a file that is not UTF-8.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

UTF_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_BLANKS = re.compile(r"\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v]+")


class Unreadable(Exception):
    """A file that yields no text: ``reason`` (short, for the summary) and ``detail``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def decode(data: bytes) -> tuple[str, str | None]:
    """``(text, encoding)``: UTF-8 (a BOM dropped; encoding None), else the encoding that
    charset-normalizer detects. Raises Unreadable for binary data or bytes no encoding explains."""
    if data.startswith(UTF_BOMS[0]):
        data = data[3:]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        bad = f"byte {data[error.start:error.start + 1]!r} at offset {error.start}"
    if b"\x00" in data[:4096] and not data.startswith(UTF_BOMS[1:]):
        raise Unreadable("binary", "holds NUL bytes: not a text file")
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise Unreadable("not text", f"not UTF-8 ({bad}) and no encoding explains it")
    # among equally plausible readings prefer Windows-1252, the usual legacy encoding of Western text
    # (charset-normalizer ranks cp1250 first for short French or German texts, misreading è as č)
    western = next((m for m in matches if m.encoding == "cp1252" and m.chaos <= best.chaos), None)
    if western is not None or "cp1252" in best.could_be_from_charset:
        return str(western or best), "cp1252"
    return str(best), best.encoding


def read_plain(path: Path) -> tuple[str, dict | None, str | None]:
    text, encoding = decode(path.read_bytes())
    return text, None, encoding


def read_html(path: Path) -> tuple[str, dict | None, str | None]:
    """The visible text of an HTML page (no scripts, styles or tags; block elements start new
    lines), its ``<title>`` first and in the metadata."""
    markup, encoding = decode(path.read_bytes())
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    title, body = _clean(" ".join(parser.title)), _clean("".join(parser.parts))
    text = f"{title}\n\n{body}" if title and not body.startswith(title) else body
    return text, {"title": title} if title else None, encoding


def read_pdf(path: Path) -> tuple[str, dict | None, str | None]:
    """The text layer of a PDF (pypdf), pages separated by a blank line; metadata: pages, title."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        raise Unreadable("PDF support not installed", "pip install 'maxsim[ingest]' (pypdf)") from None
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("encrypted PDF", "needs a password")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata or {}).get("/Title")
    except (PyPdfError, ValueError, KeyError, OSError) as error:
        raise Unreadable("unreadable PDF", f"{type(error).__name__}: {error}") from None
    metadata = {"pages": len(pages), **({"title": str(title)} if title else {})}
    return "\n\n".join(p.strip() for p in pages if p.strip()), metadata, None


READERS = {".txt": read_plain, ".md": read_plain, ".markdown": read_plain, ".html": read_html, ".htm": read_html,
           ".pdf": read_pdf}


class _TextParser(HTMLParser):
    HIDDEN = {"script", "style", "noscript", "template", "svg"}
    BLOCKS = {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "footer",
              "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
              "section", "table", "td", "th", "tr", "ul"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.title, self.hidden, self.in_title = [], [], 0, False

    def handle_starttag(self, tag, attrs):
        self._tag(tag, opening=True)

    def handle_endtag(self, tag):
        self._tag(tag, opening=False)

    def _tag(self, tag: str, opening: bool) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden + (1 if opening else -1))
        elif tag == "title":
            self.in_title = opening
        elif tag in self.BLOCKS:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6") else "\n")

    def handle_data(self, data):
        if self.in_title:
            self.title.append(data)
        elif not self.hidden:
            self.parts.append(data)


def _clean(text: str) -> str:
    """Runs of spaces as one space, lines stripped, at most one blank line in a row."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
