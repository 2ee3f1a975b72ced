"""``maxsim search``: ranked hits of one query, each with its best passage and matched query terms."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from maxsim.cli import app
from maxsim.cli.common import printable, user_errors


@app.command()
def search(
    index: Path = typer.Argument(..., help="A retriever folder made by `maxsim index`."),
    query: str = typer.Argument(..., help="The query text."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of hits."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Fuse BM25 with MaxSim (reciprocal-rank fusion)."),
    model: str = typer.Option(None, "--model", "-m", help="Model to use instead of the one the index names."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per hit instead of a table."),
):
    """Search INDEX for QUERY; each hit shows the passage around the document tokens with the highest
    MaxSim contribution (picked tokens in bold) and the query terms they matched."""
    from maxsim.io import best_passage, matched_terms
    from maxsim.search import Retriever
    from maxsim.search.retriever import load_model

    with user_errors():
        with Retriever.open(index, model=load_model(model) if model else None) as retriever:
            hits = retriever.search(query, k=k, hybrid=hybrid)[0]
            for hit in hits:
                explanation = retriever.explain(query, hit["id"])
                hit["passage"] = best_passage(hit["text"], explanation)
                hit["matched"] = matched_terms(query, hit["text"], explanation)
    if as_json:
        for rank, hit in enumerate(hits, start=1):
            typer.echo(printable(json.dumps({"rank": rank, "id": hit["id"], "score": hit["score"],
                                   "passage": hit["passage"]["text"], "matched": hit["matched"],
                                   "metadata": hit["metadata"]}, ensure_ascii=False)))
        return
    print_table(query, hits)


def print_table(query: str, hits: list[dict]) -> None:
    """A rich table: rank, id, score, passage with picked tokens in bold, matched terms."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=printable(f"{query!r}: {len(hits)} hits"), show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", overflow="fold", max_width=24)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("best passage", ratio=4)
    table.add_column("matched", ratio=1)
    for rank, hit in enumerate(hits, start=1):
        passage = Text(printable(hit["passage"]["text"].replace("\n", " ")))
        for span in hit["passage"]["highlights"]:
            passage.stylize("bold", span["start"], span["end"])
        table.add_row(str(rank), printable(hit["id"]), f"{hit['score']:.3f}", passage,
                      printable(", ".join(hit["matched"])))
    Console().print(table)
