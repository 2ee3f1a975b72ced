"""Read a collection of documents (id, text, metadata) from the layouts people keep them in:
a folder of files (``folder``), a table (``records``: .jsonl, .csv, .parquet) or a BEIR folder."""

from __future__ import annotations

from pathlib import Path

from maxsim.errors import NotFoundError
from maxsim.io.documents import Columns, Corpus, CorpusError
from maxsim.io.folder import FOLDER_SUFFIXES, read_folder
from maxsim.io.records import TABLE_SUFFIXES, read_table

BEIR_CORPUS = "corpus.jsonl"
BEIR_COLUMNS = Columns(id="_id", text="text", title="title")
FORMATS_HELP = (f"a folder of {'/'.join(FOLDER_SUFFIXES)} files, a {'/'.join(TABLE_SUFFIXES)} file with id "
                f"(or _id) and text columns, or a BEIR folder holding {BEIR_CORPUS}")

__all__ = ["BEIR_CORPUS", "Columns", "Corpus", "CorpusError", "FORMATS_HELP", "read_beir_corpus", "read_corpus"]


def read_corpus(path: str | Path, columns: Columns | None = None, strict: bool = False) -> Corpus:
    """Read ``path``: a folder of files (id = relative path; see ``maxsim.io.folder``), a
    .jsonl/.csv/.parquet table (fields per ``columns``: by default ``_id``/``id``, ``text``, an
    optional ``title``; the other fields become metadata), or a BEIR folder (its ``corpus.jsonl``).
    A title joins the text as BEIR does: ``title + " " + text``. ``strict``: raise at the first
    file or record that would be skipped for being unreadable, instead of reporting it."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; pass {FORMATS_HELP}.")
    if path.is_dir() and (path / BEIR_CORPUS).is_file():
        corpus = read_beir_corpus(path, columns, strict)
    elif path.is_dir():
        corpus = read_folder(path, strict)
    elif path.suffix.lower() in TABLE_SUFFIXES:
        corpus = read_table(path, columns or Columns(), strict)
    else:
        raise CorpusError(f"{path}: unknown input kind {path.suffix!r}; pass {FORMATS_HELP}.")
    corpus.source = str(path)
    if not len(corpus):
        why = f" (skipped {dict(corpus.skip_counts())})" if corpus.skipped else ""
        raise CorpusError(f"{path} holds no documents{why}; pass {FORMATS_HELP}.")
    return corpus


def read_beir_corpus(folder: str | Path, columns: Columns | None = None, strict: bool = False) -> Corpus:
    """The documents of a BEIR folder's ``corpus.jsonl``: ``_id``, ``title + " " + text``, metadata."""
    return read_table(Path(folder) / BEIR_CORPUS, columns or BEIR_COLUMNS, strict)
