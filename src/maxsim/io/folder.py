"""A folder of documents: every .txt/.md/.html/.pdf file under it is one document (id = the
path relative to the folder, with "/"). Hidden files and folders (name starting with ".") and
files of other types are skipped; so are empty files and files that yield no text, each named
in ``Corpus.skipped`` with its reason. A file that is not UTF-8 is read in the encoding
charset-normalizer detects (listed in ``Corpus.decoded``); ``strict=True`` instead raises
CorpusError at the first file that cannot be read as UTF-8 text, naming it."""

from __future__ import annotations

import os
from pathlib import Path

from maxsim.io.documents import Corpus, CorpusError, Skipped
from maxsim.io.files import READERS, Unreadable

FOLDER_SUFFIXES = tuple(READERS)


def read_folder(folder: str | Path, strict: bool = False) -> Corpus:
    """The documents of ``folder`` (see the module docstring), in path order."""
    folder = Path(folder)
    corpus = Corpus()
    for path in candidate_files(folder, corpus, FOLDER_SUFFIXES):
        rel = path.relative_to(folder).as_posix()
        try:
            document = _read(path)
        except Unreadable as error:
            if strict and error.reason not in ("empty", "no text"):
                raise CorpusError(f"{path}: {error.reason} ({error.detail}); fix or remove the file, "
                                  "or run without --strict to skip it.") from None
            corpus.skipped.append(Skipped(rel, error.reason, error.detail))
            continue
        text, metadata, encoding = document
        if encoding is not None:
            if strict:
                raise CorpusError(f"{path}: not UTF-8 text (it reads as {encoding}); convert it to UTF-8, "
                                  "or run without --strict to read it as detected.")
            corpus.decoded.append((rel, encoding))
        corpus.append(rel, text, metadata, str(path))
    return corpus


def candidate_files(folder: Path, corpus: Corpus, suffixes: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` with one of ``suffixes`` (lower case), sorted by path; hidden entries and
    other types go to ``corpus.skipped``."""
    found = []
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        for name in [d for d in dirs if d.startswith(".")]:
            corpus.skipped.append(Skipped(_rel(base / name, folder) + "/", "hidden"))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = base / name
            if name.startswith("."):
                corpus.skipped.append(Skipped(_rel(path, folder), "hidden"))
            elif path.suffix.lower() not in suffixes:
                corpus.skipped.append(Skipped(_rel(path, folder), "other type", path.suffix or "no suffix"))
            else:
                found.append(path)
    corpus.skipped.sort(key=lambda s: s.where)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _read(path: Path) -> tuple[str, dict | None, str | None]:
    """(text, metadata, encoding) of one file; Unreadable when it yields no text."""
    try:
        if path.stat().st_size == 0:
            raise Unreadable("empty", "0 bytes")
        document = READERS[path.suffix.lower()](path)
    except OSError as error:
        raise Unreadable("unreadable", error.strerror or str(error)) from None
    if not document[0].strip():
        raise Unreadable("no text", "only white space" if path.suffix.lower() != ".pdf" else
                         "no text layer (a scanned PDF needs OCR first)")
    return document


def _rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()
