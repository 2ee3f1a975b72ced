"""``maxsim index``: build a collection from documents on disk — one folder, or with ``--ray`` a
sharded collection encoded on a Ray cluster; both read the input with the same reader and take every
option. With a page model (ColPali, ColQwen2, ColModernVBert) the documents are pages: image files
and PDF pages rendered at ``--dpi`` (``maxsim.io.read_pages``). The input options, the
index-parameter parsing and the summary table are shared with ``maxsim add`` (cli/add.py)."""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from pathlib import Path

import typer

from maxsim.cli.common import (
    BACKEND_HELP,
    DEFAULT_MODEL,
    DEVICE_HELP,
    DTYPE_HELP,
    MODEL_HELP,
    human_bytes,
    use_backend,
    user_errors,
)
from maxsim.cli.registry import app
from maxsim.errors import InvalidInputError
from maxsim.index.defaults import EXACT_LIMIT_VALUES
from maxsim.io.pages import DPI as DEFAULT_DPI
from maxsim.io.pages import PageCorpus, read_pages

INPUT_HELP = ("A folder of .txt/.md/.html/.pdf files, a .jsonl/.csv/.parquet table (id, text, title, metadata), "
              "or a BEIR folder (corpus.jsonl); for a page model, a folder (or file) of .png/.jpg/.webp images and "
              "PDFs, each page one document.")
STRICT = typer.Option(False, "--strict", help="Stop at the first file or record that cannot be read (naming it) "
                                              "instead of skipping it and reporting it.")
ID_COLUMN = typer.Option(None, "--id-column", help="Tables: the field holding the id (default: _id, else id).")
TEXT_COLUMN = typer.Option("text", "--text-column", help="Tables: the field holding the text.")
TITLE_COLUMN = typer.Option("title", "--title-column", help="Tables: the field holding an optional title, put "
                                                            "before the text as BEIR does ('' for none).")
METADATA_COLUMNS = typer.Option(None, "--metadata-column", help="Tables: a field to keep as metadata, repeatable "
                                                                "(default: every field but id and text).")
BATCH_SIZE = typer.Option(None, "--batch-size", min=1, help="Passages per forward pass (default 32; pages: 8).")
DPI = typer.Option(DEFAULT_DPI, "--dpi", min=1, max=1200, help="Pages: the resolution PDF pages are rendered at "
                                                                "(pixels per inch).")
DEVICE = typer.Option(None, "--device", help=DEVICE_HELP)
DTYPE = typer.Option(None, "--dtype", help=DTYPE_HELP)
BACKEND = typer.Option(None, "--backend", help=BACKEND_HELP)


@app.command()
def index(
    input: Path = typer.Argument(..., help=INPUT_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="The retriever folder to create (new or empty)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    kind: str = typer.Option("auto", "--index", help="'exact' (every vector), 'plaid' (compressed) or 'auto': exact "
                                                     f"below {EXACT_LIMIT_VALUES // 10**6}M token values (tokens x "
                                                     "dims), PLAID above; "
                                                     "--nbits or --n-centroids mean PLAID."),
    hybrid: bool = typer.Option(True, "--hybrid/--no-hybrid", help="Also keep a BM25 index for hybrid search "
                                                                   "(pages: of their PDF text layer)."),
    passages: bool = typer.Option(True, "--passages/--no-passages",
                                  help="Split documents longer than the model's document length into passages "
                                       "(--no-passages: cut them there, with a warning counting them)."),
    pool_factor: int = typer.Option(None, "--pool-factor", min=1, help="Keep about 1/N of each passage's token "
                                                                        "vectors (token pooling; default 1, pages 3)."),
    nbits: int = typer.Option(None, "--nbits", min=1, help="PLAID: bits per residual dimension, 1, 2 or 4 "
                                                             "(default 2; --index-param nbits=ternary for 1.58)."),
    n_centroids: int = typer.Option(None, "--n-centroids", min=1, help="PLAID: centroids (default: from the size)."),
    index_param: list[str] = typer.Option(None, "--index-param", help="Any other index parameter, KEY=VALUE "
                                                                      "(VALUE read as JSON, else as text), "
                                                                      "repeatable; see docs/index.md."),
    batch_size: int = BATCH_SIZE,
    device: str = DEVICE,
    dtype: str = DTYPE,
    backend: str = BACKEND,
    strict: bool = STRICT,
    dpi: float = DPI,
    id_column: str = ID_COLUMN,
    text_column: str = TEXT_COLUMN,
    title_column: str = TITLE_COLUMN,
    metadata_column: list[str] = METADATA_COLUMNS,
    ray: bool = typer.Option(False, "--ray", help="Encode on a Ray cluster into a sharded collection (docs/scale.md)."),
    address: str = typer.Option(None, "--address", help="With --ray: a running cluster (default: start a local one)."),
    workers: int = typer.Option(None, "--workers", min=1,
                                help="With --ray: encoder workers (default: GPUs, else CPUs)."),
    shards: int = typer.Option(None, "--shards", min=1, help="With --ray: shard folders (default: --workers)."),
):
    """Encode every document of INPUT (long ones as passages; with a page model, every page) and store
    vectors, texts and metadata in OUTPUT (with --ray: a sharded collection, encoded on a Ray cluster);
    then print a summary: documents read, skipped (and why), split into passages, bytes per page."""
    from maxsim.models.loading import model_modality

    use_backend(backend)
    with user_errors(input):
        if not ray and (address or workers or shards):
            raise InvalidInputError("--address, --workers and --shards build a sharded collection: add --ray.")
        params = index_params(index_param, nbits=nbits, n_centroids=n_centroids)
        modality = model_modality(model)
        if ray and modality == "image":
            raise InvalidInputError(f"--ray builds collections of texts; {model!r} is a page model: index the pages "
                                    "into one folder (drop --ray).")
        corpus = read_documents(input, modality, strict, dpi, hybrid,
                                (id_column, text_column, title_column, metadata_column))
        typer.echo(f"read {len(corpus)} documents from {input}; loading model {model!r}", err=True)
        settings = {"model": model, "index": kind, "hybrid": hybrid, "passages": passages,
                    "pool_factor": pool_factor, "batch_size": batch_size, "device": device, "dtype": dtype,
                    "backend": backend, **params}
        start = time.perf_counter()
        with reported_warnings() as caught:
            if ray:
                stats = build_on_ray(corpus, output, settings, address, workers, shards)
            else:
                stats = build_folder(corpus, output, settings)
    print_summary(corpus, None, stats, time.perf_counter() - start, caught)
    if kind == "auto":
        typer.echo(f"index: {stats['kind']} ({kind_reason(corpus, pool_factor, stats, params)})")
    where = f"{stats['shards']} shards" if ray else "one folder"
    typer.echo(f"indexed {stats['documents']} documents ({stats['passages']} passages), {stats['tokens']} token "
               f"vectors, {human_bytes(stats['bytes_on_disk'])} on disk, {where} -> {output}")


def build_folder(corpus, output: Path, settings: dict) -> dict:
    """A retriever folder of ``corpus`` with ``settings`` (the command's options); its stats."""
    from maxsim.models.loading import load_model
    from maxsim.search import Retriever

    s = dict(settings, expected_tokens=expected_tokens(corpus, settings["pool_factor"]))
    encode = {key: s.pop(key) for key in ("batch_size", "device", "dtype", "backend")}
    encoder = load_model(s["model"], encode["device"], encode["dtype"], encode["backend"])
    with Retriever.create(output, encoder, model_name=s.pop("model"), **s) as retriever:
        write_corpus(retriever.add, corpus, encode["batch_size"])
        stats = retriever.stats()
    from maxsim.cli.search import model_source
    from maxsim.models.frozen import freeze

    freeze(encoder, model_source(output))  # so that the first `maxsim search` need not build the model
    return stats


def expected_tokens(corpus, pool_factor: int | None) -> int:
    """The token vectors ``corpus`` will give (``maxsim.index.estimate_tokens``), for ``--index auto``."""
    from maxsim.index import estimate_tokens
    from maxsim.models.pages.defaults import PAGE_POOL_FACTOR

    if isinstance(corpus, PageCorpus):
        return estimate_tokens(pages=len(corpus), pool_factor=pool_factor or PAGE_POOL_FACTOR)
    return estimate_tokens(corpus.texts, pool_factor=pool_factor or 1)


def kind_reason(corpus, pool_factor: int | None, stats: dict, params: dict) -> str:
    """Why ``--index auto`` chose the kind it did (for one folder or per shard)."""
    from maxsim.index import choose_kind

    if params:
        return f"chosen by auto: {stats['kind']} parameters given ({', '.join(sorted(params))})"
    per_folder = expected_tokens(corpus, pool_factor) // stats.get("shards", 1)
    return "chosen by auto: about " + choose_kind(0, per_folder, stats["dim"])[1]


def write_corpus(write, corpus, batch_size: int | None) -> None:
    """``write`` (a collection's ``add`` or ``upsert``) the documents of ``corpus``, or its pages."""
    pages = corpus.pages if isinstance(corpus, PageCorpus) else None
    write(corpus.texts, ids=corpus.ids, metadata=corpus.metadata, batch_size=batch_size, show_progress_bar=True,
          pages=pages)


def build_on_ray(corpus, output: Path, settings: dict, address: str | None, workers: int | None,
                 shards: int | None) -> dict:
    """The same documents and settings encoded on Ray into the sharded collection ``output``; its stats."""
    from maxsim.distributed import ShardedRetriever, build_collection

    def progress(done: int, total: int, row) -> None:
        typer.echo(f"encoded {done}/{total} documents", err=True)

    built = build_collection(corpus, output, address=address, workers=workers, shards=shards, progress=progress,
                             **settings)
    typer.echo(f"{built['encoded']} documents encoded now by {built['workers']} Ray workers", err=True)
    with ShardedRetriever.open(output) as collection:
        return collection.stats()


def read_documents(path: Path, modality: str, strict: bool, dpi: float, text: bool, columns: tuple):
    """The documents of ``path`` for a collection of ``modality``: pages (``read_pages``, with their
    text layers when ``text``), or texts (``read_input`` with the table ``columns``)."""
    if modality == "image":
        return read_pages(path, dpi, text=text, strict=strict)
    return read_input(path, strict, *columns)


def read_input(path: Path, strict: bool, id_column, text_column, title_column, metadata_columns):
    """``maxsim.io.read_corpus`` with the table columns of the command line."""
    from maxsim.io import Columns, read_corpus

    columns = None
    if id_column or text_column != "text" or title_column != "title" or metadata_columns:
        columns = Columns(id=id_column, text=text_column, title=title_column or None,
                          metadata=tuple(metadata_columns) if metadata_columns else None)
    return read_corpus(path, columns, strict=strict)


def index_params(pairs: list[str] | None, **named) -> dict:
    """Index parameters from ``KEY=VALUE`` strings (VALUE as JSON, else text) and named options
    (None = not given)."""
    from maxsim.errors import InvalidInputError

    params = {key: value for key, value in named.items() if value is not None}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--index-param {pair!r}: expected KEY=VALUE, e.g. nbits=2.")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


@contextlib.contextmanager
def reported_warnings():
    """Collect the library's warnings (e.g. documents cut with --no-passages) to print them once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield caught


def print_summary(corpus, before: dict | None, after: dict, seconds: float, caught=()) -> None:
    """A table of what was read, skipped (and why), split into passages and stored; ``before``:
    the folder's stats before the change (``maxsim add``), shown as ``before -> after``."""
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False)
    for label, value in summary_rows(corpus, before, after, seconds):
        table.add_row(label, value)
    console = Console(soft_wrap=True)
    console.print(table)
    for skipped in corpus.skipped[:10]:
        console.print(f"skipped {skipped.where}: {skipped.reason}" + (f" ({skipped.detail})" if skipped.detail else ""),
                      markup=False, highlight=False)
    if len(corpus.skipped) > 10:
        console.print(f"... and {len(corpus.skipped) - 10} more skipped", highlight=False)
    for warning in caught:
        typer.secho(f"warning: {warning.message}", err=True, fg=typer.colors.YELLOW)


def summary_rows(corpus, before: dict | None, after: dict, seconds: float) -> list[tuple[str, str]]:
    def change(key: str) -> str:
        value = after.get(key, 0)
        return f"{before.get(key, 0)} -> {value}" if before is not None else str(value)

    rows = [("documents read", str(len(corpus)))]
    rows += [(f"skipped: {reason}", str(n)) for reason, n in sorted(corpus.skip_counts().items())]
    if corpus.decoded:
        encodings = sorted({encoding for _, encoding in corpus.decoded})
        rows.append(("read with a detected encoding", f"{len(corpus.decoded)} ({', '.join(encodings)})"))
    tiers = after.get("index_tiers", {})
    rows += [("documents in the folder", change("documents")),
             ("documents split into passages", change("split_documents")),
             ("passages indexed", change("passages")), ("token vectors", change("tokens")),
             ("on disk", human_bytes(after["bytes_on_disk"])), *page_rows(after),
             ("index bytes per tier", ", ".join(f"{k} {human_bytes(v)}" for k, v in tiers.items())),
             ("time", f"{seconds:.1f} s ({len(corpus) / max(seconds, 1e-9):.1f} documents/s)")]
    return rows


def page_rows(stats: dict) -> list[tuple[str, str]]:
    """The bytes per page of a page collection: on disk, of which index files and page images."""
    if "page_bytes" not in stats or not stats["documents"]:
        return []
    n, parts = stats["documents"], stats["page_bytes"]
    return [("bytes per page", f"{human_bytes(stats['bytes_on_disk'] / n)} ({human_bytes(parts['index'] / n)} index, "
                               f"{human_bytes(parts['images'] / n)} page image)")]
