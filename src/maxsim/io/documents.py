"""What the readers produce: a ``Corpus`` (parallel ids, texts, metadata) with a report of what was
skipped, the ``Columns`` of a table, the one error type of reading, and BEIR's title convention."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from maxsim.errors import InvalidInputError

ID_KEYS = ("_id", "id")


class CorpusError(InvalidInputError):
    """A collection file that cannot be read; the message names the file (and line) and the fix."""


def beir_text(title: str | None, text: str) -> str:
    """BEIR's convention for a document with a title: ``title + " " + text``, the text alone when
    the title is empty (the title alone when the text is). Every reader of maxsim (index,
    evaluate, training, quickstart) uses it."""
    return f"{title} {text}" if title and text else (text or title or "")


@dataclass(frozen=True)
class Columns:
    """Which fields of a table record (.jsonl, .csv, .parquet) hold what. ``id``: None tries
    ``_id`` then ``id``; ``title``: None for no title field; ``metadata``: field names to keep
    (None: every field but the id and the text; the title is kept too)."""

    id: str | None = None
    text: str = "text"
    title: str | None = "title"
    metadata: tuple[str, ...] | None = None


@dataclass
class Skipped:
    """A file or record not read: ``where`` (path, or path:line) and ``reason`` (short, e.g. "empty")."""

    where: str
    reason: str
    detail: str = ""


@dataclass
class Corpus:
    """Parallel lists: ``ids[i]`` (str), ``texts[i]`` (str), ``metadata[i]`` (dict or None).
    ``skipped``: what was left out and why; ``decoded``: (file, encoding) of files read with a
    detected encoding instead of UTF-8; ``source``: the path it was read from ("" when built in memory)."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: list[dict | None] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    decoded: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""
    _where: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, doc_id: str, text: str, metadata: dict | None, where: str) -> None:
        """Add one document; an id already used raises CorpusError naming both places."""
        if doc_id in self._where:
            raise CorpusError(f"{where}: id {doc_id!r} is already used at {self._where[doc_id]}; ids must be unique.")
        self._where[doc_id] = where
        self.ids.append(doc_id)
        self.texts.append(text)
        self.metadata.append(metadata or None)

    def skip_counts(self) -> Counter:
        """reason -> number of files (or records) skipped for it."""
        return Counter(s.reason for s in self.skipped)
