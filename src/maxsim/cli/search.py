"""``maxsim search``: ranked hits of one query, each with an excerpt of its best passage and the
matched query terms.

In this process (loading the model), or through a running ``maxsim serve`` of the folder: the one
given with ``--server URL`` or the one its discovery file names (``maxsim.cli.discovery``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from maxsim.cli import app
from maxsim.cli.common import BACKEND_HELP, DEVICE_HELP, DTYPE_HELP, printable, use_backend, user_errors
from maxsim.cli.where import WHERE_HELP


@app.command()
def search(
    index: Path = typer.Argument(..., help="A collection folder made by `maxsim index`."),
    query: str = typer.Argument(..., help="The query text."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of hits."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Fuse BM25 with MaxSim (--fusion)."),
    fusion: str = typer.Option("rrf", "--fusion", help="With --hybrid: rrf (reciprocal ranks), convex (normalized "
                                                       "scores weighed by --alpha) or score."),
    alpha: float = typer.Option(None, "--alpha", min=0.0, max=1.0, help="With --fusion convex: the weight of "
                                                                        "MaxSim (default 0.75)."),
    prf: bool = typer.Option(False, "--prf", help="ColBERT-PRF: expand the query from its top 3 documents' token "
                                                  "vectors and search again (docs/search.md)."),
    where: list[str] = typer.Option(None, "--where", "-w", help=WHERE_HELP),
    model: str = typer.Option(None, "--model", "-m", help="Model to use instead of the one the index names."),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP),
    dtype: str = typer.Option(None, "--dtype", help=DTYPE_HELP),
    backend: str = typer.Option(None, "--backend", help=BACKEND_HELP),
    server: str = typer.Option(None, "--server", help="URL of a running `maxsim serve` of INDEX "
                                                      "(e.g. http://127.0.0.1:8000): search there, no model load."),
    local: bool = typer.Option(False, "--local", help="Search in this process even when a `maxsim serve` of "
                                                      "INDEX is running."),
    api_key: str = typer.Option(None, "--api-key", envvar="MAXSIM_API_KEY", help="The server's API key, if any."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per hit instead of a table."),
):
    """Search INDEX for QUERY; each hit shows the passage around the document tokens with the highest
    MaxSim contribution (picked tokens in bold) and the query terms they matched.

    A running `maxsim serve` of INDEX answers instead: milliseconds, no model load.
    --local, --model, --device, --dtype or --backend search in this process."""
    use_backend(backend)
    with user_errors(index):
        filter = _filter(where)
        url = server or (None if local or model or device or dtype or backend else _discovered(index, api_key))
        if url:
            typer.echo(f"searching through {url}", err=True)
            hits = remote_hits(url, query, k, {"hybrid": hybrid, "fusion": fusion, "alpha": alpha, "prf": prf}, filter,
                               api_key)
        else:
            hits = local_hits(index, query, k, {"hybrid": hybrid, "fusion": fusion, "alpha": alpha, "prf": prf}, filter,
                              model, device, dtype)
    if as_json:
        for rank, hit in enumerate(hits, start=1):
            typer.echo(printable(json.dumps({"rank": rank, **hit, "excerpt": hit["excerpt"]["text"]},
                                            ensure_ascii=False)))
        return
    print_table(query, hits)


def local_hits(index: Path, query: str, k: int, how: dict, filter: dict | None, model: str | None,
               device: str | None, dtype: str | None) -> list[dict]:
    """Hits of ``query`` searched in this process (``how``: hybrid, fusion, alpha, prf), each with its
    ``excerpt`` (highlighted) and ``matched``."""
    from maxsim.io import best_excerpt, matched_terms
    from maxsim.models.loading import load_model
    from maxsim.opener import open_collection

    encoder = load_model(model, device=device, dtype=dtype) if model else None
    collection = open_collection(index, model=encoder, device=device, dtype=dtype)
    try:
        shown = []
        for hit in collection.search(query, k=k, filter=filter, **how)[0]:
            e = collection.explain(query, hit.id)
            shown.append(shown_hit(hit.id, hit.score, hit.metadata, vars(e["passage"]), best_excerpt(hit.text, e),
                                   matched_terms(query, hit.text, e)))
        return shown
    finally:
        collection.close()


def remote_hits(url: str, query: str, k: int, how: dict, filter: dict | None, api_key: str | None) -> list[dict]:
    """The same hits, from the server at ``url`` (POST /search, then POST /explain per hit)."""
    from maxsim.cli.remote import call

    body = {"queries": [query], "k": k, **{key: value for key, value in how.items() if value is not None},
            **({"filter": filter} if filter else {})}
    shown = []
    for hit in call(url, "/search", body, api_key)["results"][0]:
        e = call(url, "/explain", {"query": query, "id": hit["id"]}, api_key)
        shown.append(shown_hit(hit["id"], hit["score"], hit.get("metadata"), e["passage"], e["excerpt"], e["matched"]))
    return shown


def shown_hit(doc_id: str, score: float, metadata, passage: dict, excerpt: dict, matched: list[str]) -> dict:
    """What ``maxsim search`` prints of a hit; ``passage``: the indexed passage's ordinal and span."""
    return {"id": doc_id, "score": score, "metadata": metadata, "excerpt": excerpt, "matched": matched,
            "passage": {key: passage[key] for key in ("index", "start", "end")}}


def _filter(where: list[str] | None) -> dict | None:
    """The ``--where`` clauses as one filter dict (None without any)."""
    if not where:
        return None  # without clauses, do not import maxsim.search (torch) on the --server path
    from maxsim.cli.where import parse_where

    return parse_where(where)


def _discovered(index: Path, api_key: str | None) -> str | None:
    """The URL of a live server of ``index``; not one that needs a key when none is given."""
    from maxsim.cli.discovery import discover

    found = discover(index)
    return found["url"] if found and (api_key or not found.get("auth")) else None


def print_table(query: str, hits: list[dict]) -> None:
    """A rich table: rank, id, score, excerpt with picked tokens in bold, matched terms."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=printable(f"{query!r}: {len(hits)} hits"), show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", overflow="fold", max_width=24)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("excerpt", ratio=4)
    table.add_column("matched", ratio=1)
    for rank, hit in enumerate(hits, start=1):
        excerpt = Text(printable(hit["excerpt"]["text"].replace("\n", " ")))
        for span in hit["excerpt"]["highlights"]:
            excerpt.stylize("bold", span["start"], span["end"])
        table.add_row(str(rank), printable(hit["id"]), f"{hit['score']:.3f}", excerpt,
                      printable(", ".join(hit["matched"])))
    Console().print(table)
