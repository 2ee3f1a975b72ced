"""Training rows, read and validated: ``{"query": str, "documents": [str] * N, "scores": [float] * N}``.

Accepted layouts (per row):
- distillation: ``query``, ``documents`` (N texts), ``scores`` (N teacher scores); extra keys ignored;
- by ids (``lightonai/ms-marco-en-bge``): ``query_id``, ``document_ids``, ``scores`` plus a queries table
  and a documents table, each with an id column (``query_id`` / ``document_id`` / ``_id`` / ``id``)
  and ``text``;
- contrastive: ``query``, ``positive``, then ``negative`` (a text or a list), ``negatives`` (a list)
  or ``negative_1`` .. ``negative_k``; documents = [positive, negatives...], no scores.
Sources: a ``.jsonl`` or ``.parquet`` file, a ``datasets.Dataset``, a list of dicts, a hub dataset id,
``{"path": file-or-hub-id, "config": ..., "split": ...}`` (hub subset; split defaults to train), or a
list of such sources (read one after the other).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from maxsim.errors import InvalidInputError
from maxsim.evaluation.sources import check_local
from maxsim.io.documents import beir_text
from maxsim.io.records import iter_jsonl, iter_parquet

ID_COLUMNS = ("query_id", "document_id", "_id", "id")


class TrainingRows(torch.utils.data.Dataset):
    """Validated rows ``{"query", "documents", ["scores"]}``; every row has the same number of documents."""

    def __init__(self, rows: list[dict], name: str):
        self.rows, self.name = rows, name

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]

    @property
    def has_scores(self) -> bool:
        return bool(self.rows) and "scores" in self.rows[0]


def load_rows(source, *, queries=None, documents=None, documents_per_query: int | None = None) -> TrainingRows:
    """Read and validate training rows from ``source`` (see the module docstring).

    ``queries`` / ``documents``: id -> text tables (a mapping, a file, a Dataset or a hub id) for
    rows by ids. ``documents_per_query``: keep the first N documents (and scores) of every row; a row
    with fewer raises. Without it every row must have the same number of documents.
    Raises ValueError naming the bad row (file and line).
    """
    if documents_per_query is not None and documents_per_query <= 0:
        raise InvalidInputError(f"documents_per_query must be positive, got {documents_per_query}.")
    query_table = _id_table(queries, "queries") if queries is not None else None
    document_table = _id_table(documents, "documents") if documents is not None else None
    rows, width = [], None
    for where, raw in _iter_records(source):
        row = _normalize(raw, where, query_table, document_table)
        n = len(row["documents"])
        if documents_per_query is not None:
            if n < documents_per_query:
                raise InvalidInputError(f"{where}: has {n} documents but documents_per_query={documents_per_query}; "
                                 "lower documents_per_query or drop the row.")
            row = {key: value[:documents_per_query] if key != "query" else value for key, value in row.items()}
        elif width is not None and n != width:
            raise InvalidInputError(f"{where}: has {n} documents, earlier rows have {width}; set documents_per_query "
                             "to use the same number for every query.")
        if rows and ("scores" in row) != ("scores" in rows[0]):
            raise InvalidInputError(f"{where}: rows mix layouts with and without teacher scores.")
        width = len(row["documents"])
        rows.append(row)
    if not rows:
        raise InvalidInputError(f"{_name(source)} holds no training rows.")
    return TrainingRows(rows, _name(source))


def _normalize(raw, where: str, query_table, document_table) -> dict:
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: expected an object with 'query', got {type(raw).__name__}.")
    if "query_id" in raw and "document_ids" in raw:
        if query_table is None or document_table is None:
            raise InvalidInputError(f"{where}: rows by ids need queries= and documents= tables (id -> text).")
        query = _lookup(query_table, raw["query_id"], "query_id", where)
        docs = [_lookup(document_table, i, "document_ids", where) for i in _as_list(raw["document_ids"], where)]
        row = {"query": query, "documents": docs, "scores": raw.get("scores")}
    elif "documents" in raw:
        row = {"query": raw.get("query"), "documents": _as_list(raw["documents"], where), "scores": raw.get("scores")}
    elif "positive" in raw:
        row = {"query": raw.get("query"), "documents": [raw["positive"], *_negatives(raw, where)]}
    else:
        raise InvalidInputError(f"{where}: no 'documents', 'positive' or 'document_ids' field (keys: {sorted(raw)}); "
                         "see maxsim.training.data for the accepted layouts.")
    return _validate(row, where)


def _validate(row: dict, where: str) -> dict:
    query = row["query"]
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError(f"{where}: the query is empty or not text ({query!r}); fix or drop the row.")
    docs = row["documents"]
    if not docs:
        raise InvalidInputError(f"{where}: no documents.")
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise InvalidInputError(f"{where}: documents[{i}] is {type(doc).__name__}, not text.")
    if "scores" not in row:
        return row
    scores = row["scores"]
    if scores is None:
        row.pop("scores")
        return row
    scores = _as_list(scores, where)
    if len(scores) != len(docs):
        raise InvalidInputError(f"{where}: {len(docs)} documents but {len(scores)} scores; they must pair one to one.")
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InvalidInputError(f"{where}: scores[{i}] is {score!r}; teacher scores must be finite numbers.")
    row["scores"] = [float(s) for s in scores]
    return row


def _negatives(raw: Mapping, where: str) -> list:
    if "negatives" in raw:
        return _as_list(raw["negatives"], where)
    if "negative" in raw:
        value = raw["negative"]
        return [value] if isinstance(value, str) else _as_list(value, where)
    numbered = sorted((int(m.group(1)), key) for key in raw if (m := re.fullmatch(r"negative_(\d+)", key)))
    if not numbered:
        raise InvalidInputError(f"{where}: a 'positive' row needs 'negative', 'negatives' or 'negative_1'...")
    return [raw[key] for _, key in numbered]


def _as_list(value, where: str) -> list:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidInputError(f"{where}: expected a list, got {type(value).__name__}.")
    return list(value)


def _lookup(table: dict, key, field: str, where: str) -> str:
    try:
        return table[str(key)]
    except KeyError:
        raise InvalidInputError(f"{where}: {field} {key!r} is not in its table.") from None


def _id_table(source, name: str) -> dict[str, str]:
    if isinstance(source, Mapping) and "path" not in source:
        return {str(k): v for k, v in source.items()}
    table = {}
    for where, raw in _iter_records(source, default_config=name):
        key = next((raw[c] for c in ID_COLUMNS if c in raw), None)
        if key is None or not isinstance(raw.get("text"), str):
            raise InvalidInputError(f"{where}: a {name} table row needs an id column ({'/'.join(ID_COLUMNS)}) "
                                    "and 'text'.")
        table[str(key)] = beir_text(raw.get("title") or "", raw["text"])  # BEIR corpus rows: with the title
    return table


def _iter_records(source, default_config: str | None = None) -> Iterator[tuple[str, dict]]:
    """(where, record) pairs; ``where`` names the row for error messages."""
    config, split = default_config, "train"
    if isinstance(source, Mapping):
        config, split, source = source.get("config", config), source.get("split", split), source["path"]
    if isinstance(source, list) and source and all(_is_source(x) for x in source):  # several sources
        for item in source:
            yield from _iter_records(item, default_config)
        return
    if isinstance(source, list):
        yield from ((f"rows[{i}]", r) for i, r in enumerate(source))
        return
    if hasattr(source, "column_names") and hasattr(source, "__iter__"):  # a datasets.Dataset
        yield from ((f"dataset row {i}", r) for i, r in enumerate(source))
        return
    path = Path(os.fspath(source)).expanduser()
    if path.suffix == ".jsonl" and path.is_file():
        yield from iter_jsonl(path)
    elif path.suffix == ".parquet" and path.is_file():
        yield from iter_parquet(path)
    elif path.exists():
        raise InvalidInputError(f"{source}: not a .jsonl or .parquet file.")
    else:
        check_local(source, "training data")
        import datasets

        dataset = datasets.load_dataset(str(source), config, split=split)
        yield from ((f"{source} ({config or 'default'}/{split}) row {i}", r) for i, r in enumerate(dataset))


def _is_source(item) -> bool:
    return isinstance(item, (str, os.PathLike)) or (isinstance(item, Mapping) and "path" in item)


def _name(source) -> str:
    if isinstance(source, list) and source and all(_is_source(x) for x in source):
        return " + ".join(_name(x) for x in source)
    if isinstance(source, Mapping):
        source = source.get("path")
    return str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
