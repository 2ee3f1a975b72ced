"""A synthetic collection of long Markdown documents whose answers sit deep inside (past the first
few hundred tokens), built from Cranfield: each document is a report of ``sections`` abstracts
under Markdown headings; one chosen query's most relevant abstract (its "answer") is placed in
a section at least ``answer_after_chars`` characters into the document, the others are fillers
judged relevant to none of the chosen queries.

Used by tests/test_cli_index_passages.py and bench/passages.py (run as a script it writes the
folder: ``python tests/long_documents.py OUT [--documents 20]``).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

CRANFIELD = Path(__file__).resolve().parent / "fixtures" / "data" / "cranfield"


@dataclass
class LongCollection:
    """``documents`` {doc_id: Markdown text}; ``queries`` {query_id: text}; ``answers``
    {query_id: doc_id}; ``answer_spans`` {query_id: (start, end)} character span of the answer."""

    documents: dict[str, str]
    queries: dict[str, str]
    answers: dict[str, str]
    answer_spans: dict[str, tuple[int, int]]

    def write_markdown(self, folder: Path) -> Path:
        """One ``{doc_id}.md`` file per document in ``folder`` (created); returns ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        for doc_id, text in self.documents.items():
            (folder / f"{doc_id}.md").write_text(text, encoding="utf-8")
        return folder


def long_collection(n_documents: int = 20, sections: int = 10, answer_after_chars: int = 2000,
                    seed: int = 0, queries_from: str = "title", cranfield: Path = CRANFIELD) -> LongCollection:
    """``n_documents`` reports of ``sections`` abstracts each, one query per report (see module).
    ``queries_from``: "title" (the query is the answer abstract's title, a known-item search) or
    "cranfield" (the Cranfield query whose top-graded abstract is the answer: harder)."""
    rng = random.Random(seed)
    abstracts, queries, qrels = _read_cranfield(cranfield)
    chosen = _pick_queries(queries, qrels, abstracts, n_documents, rng)
    judged = {doc for qid in chosen for doc in qrels[qid]}
    fillers = [doc for doc in abstracts if doc not in judged]
    if len(fillers) < n_documents * (sections - 1):
        raise ValueError(f"{len(fillers)} filler abstracts for {n_documents} x {sections - 1}: ask for fewer.")
    rng.shuffle(fillers)
    documents, answers, spans = {}, {}, {}
    for number, (qid, answer) in enumerate(chosen.items()):
        doc_id = f"report-{number:03d}"
        body = [abstracts[doc] for doc in fillers[number * (sections - 1):(number + 1) * (sections - 1)]]
        documents[doc_id], spans[qid] = _report(number, body, abstracts[answer], answer_after_chars, rng)
        answers[qid] = doc_id
    texts = {qid: abstracts[answer]["title"] if queries_from == "title" else queries[qid]
             for qid, answer in chosen.items()}
    return LongCollection(documents, texts, answers, spans)


def _report(number: int, body: list[dict], answer: dict, after: int, rng: random.Random) -> tuple[str, tuple]:
    """The Markdown text of one report and the character span of its answer's text."""
    parts = [f"# Report {number}: {body[0]['title'].rstrip(' .')}\n\n"]
    at = next(i for i in range(1, len(body) + 1) if sum(len(p["text"]) for p in body[:i]) >= after)
    at = rng.randint(at, len(body))
    span = None
    for i, section in enumerate(body[:at] + [answer] + body[at:]):
        parts.append(f"## Section {i + 1}\n\n")
        start = sum(map(len, parts))
        parts.append(section["text"] + "\n\n")
        span = (start, start + len(section["text"])) if section is answer else span
    return "".join(parts), span


def _pick_queries(queries: dict, qrels: dict, abstracts: dict, n: int, rng: random.Random) -> dict[str, str]:
    """{query_id: answer doc id}: ``n`` queries (of those with a top-graded document), each with its
    top-graded abstract; no two queries share an answer."""
    candidates = sorted(qid for qid in queries if qrels.get(qid) and max(qrels[qid].values()) >= 3)
    rng.shuffle(candidates)
    chosen, used = {}, set()
    for qid in candidates:
        best = max(qrels[qid].values())
        answer = min(doc for doc, grade in qrels[qid].items() if grade == best and doc in abstracts)
        if answer not in used:
            chosen[qid] = answer
            used.add(answer)
        if len(chosen) == n:
            return chosen
    raise ValueError(f"only {len(chosen)} usable queries in Cranfield, asked for {n}.")


def _read_cranfield(folder: Path) -> tuple[dict, dict, dict]:
    abstracts = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        abstracts[row["_id"]] = {"title": row["title"], "text": row["text"]}
    queries = {row["_id"]: row["text"] for row in map(json.loads, (folder / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, doc, grade = line.split("\t")
        qrels.setdefault(qid, {})[doc] = int(grade)
    return abstracts, queries, qrels


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    collection = long_collection(args.documents, seed=args.seed)
    collection.write_markdown(args.output / "documents")
    (args.output / "queries.json").write_text(json.dumps({"queries": collection.queries,
                                                         "answers": collection.answers}, indent=1))
    print(f"wrote {len(collection.documents)} documents and queries.json to {args.output}")
