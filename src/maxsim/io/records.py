"""Tables of records: .jsonl (one JSON object per line), .csv (a header row), .parquet. One row
reader per format, shared by every part of maxsim that reads such files (collections, BEIR
folders, evaluation, training data); ``read_table`` turns records into a ``Corpus``."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

from maxsim.io.documents import ID_KEYS, Columns, Corpus, CorpusError, Skipped, beir_text

TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
BOM = b"\xef\xbb\xbf"
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """``(where, object)`` per non-blank line (``where`` = "path:line"), read as it goes; UTF-8, a
    BOM allowed. A line that is not UTF-8 or not a JSON object raises CorpusError naming it."""
    try:
        handle = Path(path).open("rb")
    except OSError as error:
        raise CorpusError(f"{path}: cannot be read ({error.strerror}).") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            line = _utf8(raw[3:] if number == 1 and raw.startswith(BOM) else raw, where)
            if line.strip():
                yield where, _json_object(line, where)


def _json_object(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{where}: not valid JSON ({error.msg}); each line must be one JSON object: "
                          "fix or remove the line.") from None
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    return row


def iter_csv(path: str | Path) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` per data row of a CSV file with a header row; values are strings."""
    reader = csv.DictReader(io.StringIO(read_utf8(Path(path)), newline=""))
    try:
        if not reader.fieldnames:
            raise CorpusError(f"{path}:1: no header row; the first line must name the columns (id,text,...).")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise CorpusError(f"{where}: more fields than the {len(reader.fieldnames)} header columns; "
                                  "quote values that contain commas.")
            yield where, row
    except csv.Error as error:
        raise CorpusError(f"{path}:{reader.line_num}: malformed CSV ({error}).") from None


def iter_parquet(path: str | Path) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` per row of a Parquet file (``where`` = "path row N", from 0)."""
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(str(path)).iter_batches()
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ...
        raise CorpusError(f"{path}: not a readable Parquet file ({error}).") from None
    index = 0
    for batch in batches:
        for record in batch.to_pylist():
            yield f"{path} row {index}", record
            index += 1


def iter_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """The rows of a .jsonl, .csv or .parquet file, by its suffix."""
    readers = {".jsonl": iter_jsonl, ".csv": iter_csv, ".parquet": iter_parquet}
    suffix = Path(path).suffix.lower()
    if suffix not in readers:
        raise CorpusError(f"{path}: not a table file (expected one of {', '.join(TABLE_SUFFIXES)}).")
    return readers[suffix](path)


def read_table(path: str | Path, columns: Columns = Columns(), strict: bool = False) -> Corpus:
    """A ``Corpus`` of the records of ``path``: id, text (``title + " " + text`` when a title is
    given) and metadata per ``columns``. A record without text (nor title) is skipped and reported
    (``strict``: raises). A record without id, or with a repeated one, raises."""
    corpus, seen, typed = Corpus(), set(), Path(path).suffix.lower() == ".csv"
    for where, row in iter_records(path):
        seen.update(row)
        document = record_document(row, columns, where)
        if document is None:
            if strict:
                raise CorpusError(f"{where}: the record has no text; give it some or drop it (or omit --strict).")
            corpus.skipped.append(Skipped(where, "no text"))
            continue
        doc_id, text, metadata = document
        if typed and metadata:  # CSV cells are strings: numbers become numbers, for filters
            metadata = {key: _csv_value(value) for key, value in metadata.items()}
        corpus.append(doc_id, text, metadata, where)
    missing = [name for name in (columns.metadata or ()) if name not in seen]
    if missing and len(corpus):
        raise CorpusError(f"{path}: metadata column(s) {missing} are in no record; columns seen: {sorted(seen)}.")
    return corpus


def record_document(row: dict, columns: Columns, where: str) -> tuple[str, str, dict | None] | None:
    """(id, text, metadata) of one record, or None when it holds no text; raises CorpusError naming
    ``where`` for a missing id or a text or title that is not a string."""
    key = columns.id or next((k for k in ID_KEYS if k in row), ID_KEYS[0])
    if row.get(key) in (None, ""):
        names = repr(columns.id) if columns.id else "'_id' or 'id'"
        raise CorpusError(f"{where}: missing id; give each record an {names} field.")
    text = _string(row, columns.text, where, required=True)
    title = _string(row, columns.title, where, required=False) if columns.title else ""
    joined = beir_text(title, text)
    if not joined.strip():
        return None
    keep = columns.metadata if columns.metadata is not None else [k for k in row if k not in (key, columns.text)]
    metadata = {k: _json_value(row[k], k, where) for k in keep if row.get(k) not in (None, "")}
    return str(row[key]), joined, metadata or None


def _string(row: dict, name: str, where: str, required: bool) -> str:
    value = row.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        what = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise CorpusError(f"{where}: field {name!r} is {what}; give each record its {name}.")
    return value


def _json_value(value, name: str, where: str):
    """``value`` as JSON can hold it: dates as ISO strings, decimals as floats."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, name, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v, name, where) for k, v in value.items()}
    raise CorpusError(f"{where}: metadata field {name!r} holds a {type(value).__name__}, which JSON cannot; "
                      "convert it or leave the column out of the metadata.")


def _csv_value(value):
    """A CSV cell that reads as an integer or a decimal (``12``, ``-3.5``) as a number."""
    if not isinstance(value, str):
        return value
    if _INT.fullmatch(value):
        return int(value)
    return float(value) if _FLOAT.fullmatch(value) else value


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (a BOM is dropped); CorpusError naming the line of a bad byte."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"{path}: cannot be read ({error.strerror}).") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _not_utf8(f"{path}:{line}", data, error) from None


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(where, data, error) from None


def _not_utf8(where: str, data: bytes, error: UnicodeDecodeError) -> CorpusError:
    return CorpusError(f"{where}: not UTF-8 text (byte {data[error.start:error.start + 1]!r}); "
                       "convert the file to UTF-8.")
