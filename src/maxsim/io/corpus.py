"""Read a collection of documents (id, text, metadata) from the layouts people keep them in."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

TEXT_SUFFIXES = (".txt", ".md")
ID_KEYS = ("_id", "id")
FORMATS_HELP = ("a folder of .txt/.md files, a .jsonl or .csv file with id (or _id) and text columns, "
                "or a BEIR folder holding corpus.jsonl")


class CorpusError(ValueError):
    """A collection file that cannot be read; the message names the file (and line) and the fix."""


@dataclass
class Corpus:
    """Parallel lists: ``ids[i]`` (str), ``texts[i]`` (str), ``metadata[i]`` (dict or None)."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: list[dict | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, doc_id: str, text: str, metadata: dict | None, where: str, seen: dict) -> None:
        if doc_id in seen:
            raise CorpusError(f"{where}: id {doc_id!r} is already used at {seen[doc_id]}; ids must be unique.")
        seen[doc_id] = where
        self.ids.append(doc_id)
        self.texts.append(text)
        self.metadata.append(metadata or None)


def read_corpus(path: str | Path) -> Corpus:
    """Read ``path``: a folder of .txt/.md files (id = relative path), a .jsonl/.csv file with an
    ``_id``/``id`` and a ``text`` column (optional ``title``, other columns become metadata), or a
    BEIR folder (its ``corpus.jsonl``). A title is put before the text unless the text starts with it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass {FORMATS_HELP}.")
    if path.is_dir():
        beir = path / "corpus.jsonl"
        corpus = read_jsonl(beir) if beir.is_file() else read_text_folder(path)
    elif path.suffix == ".jsonl":
        corpus = read_jsonl(path)
    elif path.suffix == ".csv":
        corpus = read_csv(path)
    else:
        raise CorpusError(f"{path}: unknown input kind {path.suffix!r}; pass {FORMATS_HELP}.")
    if not len(corpus):
        raise CorpusError(f"{path} holds no documents; pass {FORMATS_HELP}.")
    return corpus


def read_text_folder(folder: Path) -> Corpus:
    """Every .txt/.md file under ``folder`` (recursively, sorted) is one document; id = relative path."""
    corpus, seen = Corpus(), {}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise CorpusError(f"{file}: not UTF-8 text ({error.reason} at byte {error.start}); "
                              f"convert it to UTF-8 or remove it.") from None
        rel = file.relative_to(folder).as_posix()
        corpus.append(rel, text, None, str(file), seen)
    return corpus


def read_jsonl(file: Path) -> Corpus:
    """One JSON object per line; blank lines are skipped."""
    corpus, seen = Corpus(), {}
    with _open(file) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file}:{line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CorpusError(f"{where}: invalid JSON ({error.msg}); each line must be one JSON object.") from None
            if not isinstance(row, dict):
                raise CorpusError(f"{where}: expected a JSON object with id and text, got {type(row).__name__}.")
            corpus.append(*_document(row, where), where, seen)
    return corpus


def read_csv(file: Path) -> Corpus:
    """A header row naming ``_id``/``id`` and ``text`` (optional ``title``), then one document per row."""
    corpus, seen = Corpus(), {}
    with _open(file, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise CorpusError(f"{file}:1: no header row; the first line must name the columns (id,text,...).")
        try:
            for row in reader:
                where = f"{file}:{reader.line_num}"
                if None in row:
                    raise CorpusError(f"{where}: more fields than the {len(reader.fieldnames)} header columns; "
                                      f"quote values that contain commas.")
                corpus.append(*_document(row, where), where, seen)
        except csv.Error as error:
            raise CorpusError(f"{file}:{reader.line_num}: malformed CSV ({error}).") from None
    return corpus


def _document(row: dict, where: str) -> tuple[str, str, dict | None]:
    """(id, text, metadata) of one record; the message names ``where`` when a field is missing."""
    key = next((k for k in ID_KEYS if k in row), None)
    if key is None or row[key] in (None, ""):
        raise CorpusError(f"{where}: missing id; give each record an '_id' or 'id' field.")
    text, title = row.get("text"), row.get("title") or ""
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        raise CorpusError(f"{where}: field 'text' is {what}; give each record its text.")
    if not isinstance(title, str):
        raise CorpusError(f"{where}: field 'title' must be a string, got {type(title).__name__}.")
    metadata = {k: v for k, v in row.items() if k not in (*ID_KEYS, "text") and v not in (None, "")}
    if title and not text.startswith(title):
        text = f"{title}\n{text}"
    return str(row[key]), text, metadata or None


def _open(file: Path, **kwargs):
    try:
        return file.open(encoding="utf-8", **kwargs)
    except OSError as error:
        raise CorpusError(f"{file}: cannot be read ({error.strerror}).") from None
