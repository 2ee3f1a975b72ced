"""``maxsim list``: the documents of a collection that match a filter, a page at a time."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from maxsim.cli.common import printable, user_errors
from maxsim.cli.registry import app
from maxsim.cli.where import WHERE_HELP, parse_where


@app.command("list")
def list_documents(
    index: Path = typer.Argument(..., help="A collection made by `maxsim index` (a folder or a sharded one)."),
    where: list[str] = typer.Option(None, "--where", "-w", help=WHERE_HELP),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Documents to print."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many matching documents first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object (id, text, metadata) per document."),
):
    """Print the documents of INDEX whose metadata matches every --where clause (all without one), in id
    order: id, metadata and the start of the text (--json: whole documents)."""
    from maxsim.opener import open_collection

    with user_errors(index):
        with open_collection(index) as collection:
            documents = collection.documents(filter=parse_where(where) if where else None, limit=limit,
                                             offset=offset)
    for document in documents:
        if as_json:
            typer.echo(printable(json.dumps(document.to_dict(), ensure_ascii=False)))
        else:
            meta = json.dumps(document.metadata, ensure_ascii=False) if document.metadata else ""
            typer.echo(printable(f"{document.id}\t{meta}\t{document.text[:80].replace(chr(10), ' ')}"))
    if not documents:
        typer.echo("no documents match.", err=True)
