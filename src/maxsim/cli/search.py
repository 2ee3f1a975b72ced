"""``maxsim search``: ranked hits of one query, each with an excerpt of its best passage and the
matched query terms.

Through a running ``maxsim serve`` of the folder (the one given with ``--server URL``, or the one
its discovery file names: ``maxsim.cli.discovery``), or in this process: then with the folder's
model frozen (``maxsim.models.frozen``: no model build, its compiled backbone cached) when an
earlier search froze it, else loading the model and freezing it for the next search.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import typer

from maxsim.cli.common import (
    ALPHA,
    BACKEND_HELP,
    DEVICE_HELP,
    DTYPE_HELP,
    FUSION,
    PRF,
    printable,
    use_backend,
    user_errors,
)
from maxsim.cli.registry import app
from maxsim.cli.where import WHERE_HELP


@app.command()
def search(
    index: Path = typer.Argument(..., help="A collection folder made by `maxsim index`."),
    query: str = typer.Argument(..., help="The query text."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of hits."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Fuse BM25 with MaxSim (--fusion)."),
    fusion: str = FUSION,
    alpha: float = ALPHA,
    prf: bool = PRF,
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

    A running `maxsim serve` of INDEX answers instead (said on stderr): milliseconds, no model load;
    one that needs a key takes it from MAXSIM_API_KEY (a refused key is an error).
    --local, --model, --device, --dtype or --backend search in this process."""
    use_backend(backend)
    with user_errors(index):
        filter = _filter(where)
        url = server or (None if local or model or device or dtype or backend else _discovered(index, api_key))
        if url:
            typer.echo(f"searching through the maxsim server at {url}", err=True)
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
    print_table(query, hits, hybrid)


def local_hits(index: Path, query: str, k: int, how: dict, filter: dict | None, model: str | None,
               device: str | None, dtype: str | None) -> list[dict]:
    """Hits of ``query`` searched in this process (``how``: hybrid, fusion, alpha, prf), each with its
    ``excerpt`` (highlighted) and ``matched``; only the printed hits are explained (the alignment reads an
    exact index's vectors)."""
    from maxsim.io.excerpt import shown
    from maxsim.opener import open_collection

    encoder, source = _encoder(index, model, device, dtype)
    collection = open_collection(index, model=encoder, device=device, dtype=dtype)
    try:
        with one_query_scan():
            hits = collection.search(query, k=k, filter=filter, **how)[0]
        listed = [{"id": hit.id, "score": hit.score, "metadata": hit.metadata,
                   **shown(query, hit.text, collection.explain(query, hit.id))} for hit in hits]
        if encoder is None and source is not None and listed:
            from maxsim.models.frozen import freeze

            freeze(collection.model, source)  # the next search of this model skips building it
        return listed
    finally:
        collection.close()


@contextlib.contextmanager
def one_query_scan():
    """An exact index scans in float32 for the block (``MAXSIM_SCAN_DTYPE``, unless set): for one query
    its bfloat16 copy of the vectors, and the timing that picks it, would cost more than they save;
    both rank the same (the bfloat16 scan re-scores its candidates in float32)."""
    given = os.environ.get("MAXSIM_SCAN_DTYPE")
    os.environ["MAXSIM_SCAN_DTYPE"] = given or "float32"
    try:
        yield
    finally:
        if given is None:
            del os.environ["MAXSIM_SCAN_DTYPE"]


def _encoder(index: Path, model: str | None, device: str | None, dtype: str | None):
    """(encoder or None, model source to freeze or None): ``--model`` loaded, else the folder's frozen
    model when the command asks for nothing else (``frozen_encoder``)."""
    if model:
        from maxsim.models.loading import load_model

        return load_model(model, device=device, dtype=dtype), None
    return (None, None) if device or dtype else frozen_encoder(index)


def frozen_encoder(index: Path):
    """(encoder, source): the folder's model frozen at the precision its default load runs at (a query
    is encoded once however many hits are explained), or None; and the model source to freeze after
    a default load, or None where that load does not encode in OpenVINO."""
    from maxsim.models.frozen import thaw
    from maxsim.search.querycache import QueryCache

    source, precision = model_source(index), frozen_precision()
    if precision is None:
        return None, None
    frozen = thaw(source, precision)
    return (QueryCache(frozen) if frozen else None), source


def model_source(index: Path) -> str:
    """What ``load_model`` loads for the folder: its saved copy, else the model name it records."""
    from maxsim.distributed.collection import is_collection
    from maxsim.distributed.collection import read_settings as collection_settings
    from maxsim.search import folder as layout

    manifest = collection_settings(index) if is_collection(index) else layout.read_settings(index)
    return layout.model_source(index, manifest)


def frozen_precision() -> str | None:
    """The precision a default load (backend and dtype "auto", ``$MAXSIM_BACKEND`` / ``$MAXSIM_DTYPE``
    honoured) encodes at where it encodes in OpenVINO on the CPU; None where it runs in torch or ONNX."""
    from maxsim.models.precision import auto_backend, cuda_available, resolve_backend, resolve_dtype

    backend = resolve_backend("auto")
    if backend in ("auto", "torch") and cuda_available():
        return None
    precision = resolve_dtype("auto", "cpu", backend)
    runtime = backend if backend in ("onnx", "openvino") else auto_backend(backend, precision, "cpu")
    return precision if runtime == "openvino" else None


def remote_hits(url: str, query: str, k: int, how: dict, filter: dict | None, api_key: str | None) -> list[dict]:
    """The same hits, from the server at ``url``: one POST /search with ``excerpts``. A hit sent
    without one (past the server's answer budget, or removed since the search) is listed with an
    empty excerpt, and stderr says how many."""
    from maxsim.cli.remote import call

    body = {"queries": [query], "k": k, "excerpts": True, **({"filter": filter} if filter else {}),
            **{key: value for key, value in how.items() if value is not None}}
    answer = call(url, "/search", body, api_key)
    hits, excerpts = answer["results"][0], answer["excerpts"][0]
    missing = sum(shown is None for shown in excerpts)
    if missing:
        typer.echo(f"warning: {missing} of {len(hits)} hits came without an excerpt (past the server's answer "
                   "budget, or removed since the search)", err=True)
    return [{"id": hit["id"], "score": hit["score"], "metadata": hit.get("metadata"), **(shown or _bare(hit))}
            for hit, shown in zip(hits, excerpts)]


def _bare(hit: dict) -> dict:
    """A hit's listing without an excerpt: its passage span, nothing highlighted, nothing matched."""
    passage = hit.get("passage") or {}
    return {"passage": {key: passage.get(key) for key in ("index", "start", "end")},
            "excerpt": {"start": 0, "end": 0, "text": "", "highlights": []}, "matched": []}


def _filter(where: list[str] | None) -> dict | None:
    """The ``--where`` clauses as one filter dict (None without any)."""
    if not where:
        return None
    from maxsim.cli.where import parse_where

    return parse_where(where)


def _discovered(index: Path, api_key: str | None) -> str | None:
    """The URL of a live server of ``index``, or None. One that needs a key when none is given is an
    error: searching in this process instead would silently take seconds."""
    from maxsim.cli.discovery import discover
    from maxsim.errors import InvalidInputError

    found = discover(index)
    if found and found.get("auth") and not api_key:
        raise InvalidInputError(f"the maxsim server of {index} at {found['url']} needs an API key: set "
                                "MAXSIM_API_KEY (or --api-key), or search in this process with --local.")
    return found["url"] if found else None


def print_table(query: str, hits: list[dict], hybrid: bool = False) -> None:
    """A rich table: rank, id, score (fused when ``hybrid``), excerpt with picked tokens in bold,
    matched terms."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=printable(f"{query!r}: {len(hits)} hits"), show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", overflow="fold", max_width=24)
    table.add_column("fused score" if hybrid else "score", justify="right", no_wrap=True)
    table.add_column("excerpt", ratio=4)
    table.add_column("matched", ratio=1)
    for rank, hit in enumerate(hits, start=1):
        excerpt = Text(printable(hit["excerpt"]["text"].replace("\n", " ")))
        for span in hit["excerpt"]["highlights"]:
            excerpt.stylize("bold", span["start"], span["end"])
        table.add_row(str(rank), printable(hit["id"]), f"{hit['score']:.3f}", excerpt,
                      printable(", ".join(hit["matched"])))
    Console().print(table)
