"""Retrieval collections: a BEIR-layout folder, a NanoBEIR-style hub dataset, or plain dicts.

Every loader returns ``(queries, corpus, qrels)``: ``queries`` {query_id: text}, ``corpus``
{doc_id: text or {"title", "text"}}, ``qrels`` {query_id: {doc_id: grade (int)}}; ids are strings.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from maxsim.errors import NotFoundError
from maxsim.evaluation.sources import check_local
from maxsim.io.documents import CorpusError, beir_text
from maxsim.io.records import iter_jsonl

logger = logging.getLogger(__name__)

HEADER_NAMES = {"query-id", "query_id", "qid", "query"}
Collection = tuple[dict[str, str], dict[str, "str | dict"], dict[str, dict[str, int]]]


# A collection file or dict is missing, malformed or inconsistent; the message names the item.
# The same error as maxsim.io's readers, which read the files (one reader per format).
CollectionError = CorpusError


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    """Rows of a JSON-lines file (``maxsim.io.iter_jsonl``); blank lines are skipped. A malformed
    line, a non-object or a missing key raises CollectionError naming ``path:line``."""
    rows = []
    for where, row in iter_jsonl(path):
        missing = [key for key in required if key not in row]
        if missing:
            raise CollectionError(f"{where}: missing key(s) {missing}; each row needs {list(required)}.")
        rows.append(row)
    return rows


def _by_id(rows: list[dict], path: Path, value) -> dict:
    out = {}
    for row in rows:
        key = str(row["_id"])
        if key in out:
            raise CollectionError(f"{path}: id {key!r} appears twice; ids must be unique.")
        out[key] = value(row)
    return out


def read_qrels_tsv(path: Path) -> dict[str, dict[str, int]]:
    """``query-id <tab> corpus-id <tab> score`` rows (score optional: 1); a header row is optional."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or not "".join(row).strip():
                continue
            if line_no == 1 and row[0].strip().lower() in HEADER_NAMES:
                continue
            if len(row) not in (2, 3):
                raise CollectionError(f"{path}:{line_no}: expected 'query-id<TAB>corpus-id<TAB>score', "
                                      f"got {len(row)} column(s).")
            try:
                grade = int(float(row[2])) if len(row) == 3 else 1
            except ValueError:
                raise CollectionError(f"{path}:{line_no}: score {row[2]!r} is not a number.") from None
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = grade
    return qrels


def load_beir_folder(folder: str | os.PathLike, split: str = "test") -> Collection:
    """Read ``corpus.jsonl`` {"_id", "title"?, "text"}, ``queries.jsonl`` {"_id", "text"} and
    ``qrels.tsv`` (or ``qrels/{split}.tsv``) from ``folder``. Corpus values are {"title", "text"}."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(f"collection folder {folder} does not exist: pass a BEIR folder (corpus.jsonl, "
                            "queries.jsonl, qrels.tsv).")
    qrels_path = next((p for p in (folder / "qrels.tsv", folder / "qrels" / f"{split}.tsv") if p.is_file()), None)
    for path in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if path is None or not path.is_file():
            missing = path or f"qrels.tsv or qrels/{split}.tsv"
            raise CollectionError(f"{folder} is not a BEIR folder: {missing} is missing "
                                  "(expected corpus.jsonl, queries.jsonl, qrels.tsv).")
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    corpus = _by_id(read_jsonl(corpus_path, ("_id", "text")), corpus_path,
                    lambda r: {"title": r.get("title") or "", "text": r["text"] or ""})
    queries = _by_id(read_jsonl(queries_path, ("_id", "text")), queries_path, lambda r: r["text"])
    return queries, corpus, read_qrels_tsv(qrels_path)


def check_hub_reachable(timeout: float = 3.0) -> None:
    """Raise ConnectionError at once when the Hugging Face hub cannot be reached (instead of the
    datasets library's retries); does nothing in offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE),
    where only the local cache is read."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or \
            os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("", "0"):
        return
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Hugging Face hub at {constants.ENDPOINT} ({exc}). Pass local "
                              "BEIR folders instead, or set HF_HUB_OFFLINE=1 to read a cached copy.") from None


def load_hub_collection(dataset_id: str, split: str) -> Collection:
    """A NanoBEIR-style hub dataset (subsets ``corpus``, ``queries``, ``qrels``, each with ``split``),
    read with the ``datasets`` library, as sentence-transformers reads NanoBEIR: document text only
    (no title), empty documents and queries skipped, every listed pair relevant (grade 1 unless a
    ``score`` column says otherwise). A ``dataset_id`` that is a missing local path raises NotFoundError."""
    check_local(dataset_id, "collection")
    check_hub_reachable()
    from datasets import load_dataset

    def subset(name: str):
        try:
            return load_dataset(dataset_id, name, split=split)
        except Exception as exc:  # datasets raises many types: offline, missing split, ...
            raise CollectionError(f"could not load subset {name!r} split {split!r} of {dataset_id!r} "
                                  f"({type(exc).__name__}: {exc}).") from None

    corpus = {str(r["_id"]): r["text"] for r in subset("corpus") if r["text"]}
    queries = {str(r["_id"]): r["text"] for r in subset("queries") if r["text"]}
    qrels: dict[str, dict[str, int]] = {}
    for r in subset("qrels"):
        doc_ids = r["corpus-id"] if isinstance(r["corpus-id"], list) else [r["corpus-id"]]
        for doc_id in doc_ids:
            qrels.setdefault(str(r["query-id"]), {})[str(doc_id)] = int(r.get("score", 1) or 1)
    return queries, corpus, qrels


def document_text(doc) -> str:
    """A corpus value as one string: ``title + " " + text`` for {"title", "text"} (BEIR's convention),
    the text alone when the title is empty, a plain string unchanged."""
    if isinstance(doc, str):
        return doc
    if isinstance(doc, Mapping) and "text" in doc:
        return beir_text(doc.get("title") or "", doc["text"] or "")
    raise CollectionError(f"a corpus value must be a string or a {{'title', 'text'}} dict, got {doc!r:.80}.")


def normalize_collection(queries: Mapping, corpus: Mapping, qrels: Mapping, skip_unknown_docs: bool = False
                         ) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """Check and normalise dicts: ids to str, documents to strings (``document_text``), grades to int.

    Kept queries are those with text and at least one relevant document (grade > 0), as in
    sentence-transformers; queries without one are skipped. Raises CollectionError for an empty
    corpus, a kept query with empty text, a qrels document missing from the corpus (or, with
    ``skip_unknown_docs=True``, drops such judgments with a warning), or no query left to evaluate.
    """
    if not corpus:
        raise CollectionError("the corpus is empty: give at least one document.")
    docs = {str(k): document_text(v) for k, v in corpus.items()}
    texts = {str(k): v for k, v in queries.items()}
    grades_by_query: dict[str, dict[str, int]] = {}
    unknown = []
    for qid, grades in qrels.items():
        qid = str(qid)
        if qid not in texts:
            continue  # judgments of queries not asked (e.g. another split)
        kept = {}
        for doc_id, grade in grades.items():
            doc_id = str(doc_id)
            if doc_id not in docs:
                unknown.append((qid, doc_id))
                continue
            try:
                kept[doc_id] = int(grade)
            except (TypeError, ValueError):
                raise CollectionError(f"qrels[{qid!r}][{doc_id!r}] = {grade!r} is not an integer grade.") from None
        if any(g > 0 for g in kept.values()):
            grades_by_query[qid] = kept
    if unknown and not skip_unknown_docs:
        qid, doc_id = unknown[0]
        raise CollectionError(f"qrels of query {qid!r} name document {doc_id!r}, which is not in the corpus "
                              f"({len(unknown)} such judgment(s)); fix the qrels or pass skip_unknown_docs=True.")
    if unknown:
        logger.warning("skipped %d judgment(s) of documents missing from the corpus, e.g. %r", len(unknown), unknown[0])
    for qid in grades_by_query:
        if not isinstance(texts[qid], str) or not texts[qid].strip():
            raise CollectionError(f"query {qid!r} has empty text; give it text or remove it from the queries.")
    if not grades_by_query:
        raise CollectionError("no query has a relevant document (grade > 0) in the corpus: check that the "
                              "query and document ids of the qrels match the queries and the corpus.")
    kept_ids = [qid for qid in texts if qid in grades_by_query]  # the order of ``queries``
    return {qid: texts[qid] for qid in kept_ids}, docs, {qid: grades_by_query[qid] for qid in kept_ids}
