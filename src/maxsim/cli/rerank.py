"""``maxsim rerank``: order each query's candidate texts by MaxSim (``maxsim.rerank``), as JSON lines.

Input, by suffix:
- ``.jsonl``: one object per line, ``{"query": "…", "documents": ["…", …]}``; optional ``query_id``,
  and documents may be ``{"id", "text"}`` objects instead of strings.
- ``.tsv`` (no header): ``query<TAB>document`` or MS MARCO's top-1000 layout
  ``query_id<TAB>document_id<TAB>query<TAB>document``; one candidate per line, lines grouped by
  query (id, else text) in order of first appearance.

Output, one line per query: ``{"query_id"?, "query", "results": [{"rank", "index", "id"?, "score",
"passage"}, …]}`` best first; ``index`` is the candidate's position among that query's candidates in the
input; ``passage`` (``{"index", "start", "end"}``) the candidate's best passage: a candidate longer than
the model's document length is split into passages and scores its best one, as in a collection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from maxsim.cli.common import BACKEND_HELP, DEFAULT_MODEL, DEVICE_HELP, DTYPE_HELP, MODEL_HELP, use_backend
from maxsim.cli.registry import app
from maxsim.errors import InvalidInputError, NotFoundError


@dataclass
class Group:
    """One query and its candidates; ``ids`` stays empty when the input names none."""

    query: str
    query_id: str | None = None
    texts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


@app.command()
def rerank(
    input: Path = typer.Argument(..., help="A .jsonl or .tsv file of queries and their candidate texts."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the JSON lines here instead of stdout."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    k: int = typer.Option(None, "--k", "-k", min=1, help="Keep the best k candidates per query (default all)."),
    batch_size: int = typer.Option(32, min=1, help="Texts per forward pass."),
    passages: bool = typer.Option(True, "--passages/--no-passages", help="Split long candidates into passages "
                                  "and score the best one (--no-passages: cut them at the model's length)."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1, help="Score only each candidate's first tokens."),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP),
    dtype: str = typer.Option(None, "--dtype", help=DTYPE_HELP),
    backend: str = typer.Option(None, "--backend", help=BACKEND_HELP),
):
    """Rerank each query's candidates in INPUT by MaxSim; one JSON line per query, best first."""
    from maxsim.models.loading import load_model
    from maxsim.search.rerank import rerank as rerank_texts

    use_backend(backend)
    groups = read_groups(input)
    encoder = load_model(model, device=device, dtype=dtype)
    ranked = rerank_texts([g.query for g in groups], [g.texts for g in groups], k=k, model=encoder,
                          batch_size=batch_size, show_progress_bar=True, passages=passages, max_tokens=max_tokens)
    lines = [json.dumps(answer(group, hits), ensure_ascii=False) for group, hits in zip(groups, ranked)]
    if output is None:
        typer.echo("\n".join(lines))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    typer.echo(f"reranked {len(groups)} queries -> {output}", err=True)


def answer(group: Group, hits: list[dict]) -> dict:
    results = [{"rank": rank, "index": hit["id"], **({"id": group.ids[hit["id"]]} if group.ids else {}),
                "score": hit["score"], "passage": hit["passage"]} for rank, hit in enumerate(hits, start=1)]
    head = {"query_id": group.query_id} if group.query_id is not None else {}
    return {**head, "query": group.query, "results": results}


def read_groups(path: Path) -> list[Group]:
    """The queries of a .jsonl or .tsv rerank input (see the module docstring)."""
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist (or is not a file): pass a .jsonl or .tsv of queries and "
                            "candidates.")
    readers = {".jsonl": read_jsonl, ".tsv": read_tsv}
    if path.suffix not in readers:
        raise InvalidInputError(f"{path}: unknown input kind {path.suffix!r}; pass a .jsonl or .tsv file.")
    groups = readers[path.suffix](path)
    if not groups:
        raise InvalidInputError(f"{path} holds no queries.")
    return groups


def read_jsonl(path: Path) -> list[Group]:
    groups = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            groups.append(jsonl_group(line, f"{path}:{number}"))
    return groups


def jsonl_group(line: str, where: str) -> Group:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{where}: invalid JSON ({error.msg}); each line must be one JSON object.") from None
    if not isinstance(row, dict) or not isinstance(row.get("query"), str) or not isinstance(row.get("documents"), list):
        raise InvalidInputError(f'{where}: expected {{"query": "…", "documents": ["…", …]}}.')
    group = Group(row["query"], None if row.get("query_id") is None else str(row["query_id"]))
    for j, document in enumerate(row["documents"]):
        if isinstance(document, dict) and isinstance(document.get("text"), str) and "id" in document:
            group.texts.append(document["text"])
            group.ids.append(str(document["id"]))
        elif isinstance(document, str):
            group.texts.append(document)
        else:
            raise InvalidInputError(f'{where}: documents[{j}] must be a string or {{"id", "text"}}.')
    if group.ids and len(group.ids) != len(group.texts):
        raise InvalidInputError(f'{where}: give every document an id ({{"id", "text"}}) or none.')
    return group


def read_tsv(path: Path) -> list[Group]:
    groups: dict[str, Group] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) == 2:
            query, text = fields
            group = groups.setdefault(query, Group(query))
        elif len(fields) == 4:
            query_id, doc_id, query, text = fields
            group = groups.setdefault(query_id, Group(query, query_id))
            group.ids.append(doc_id)
        else:
            raise InvalidInputError(f"{path}:{number}: {len(fields)} tab-separated fields; expected 2 "
                                    "(query, document) or 4 (query_id, document_id, query, document).")
        group.texts.append(text)
    return list(groups.values())
