"""``maxsim add`` and ``maxsim remove``: change an existing collection (a folder or a sharded one),
one commit each (a kill at any point leaves every folder at its last commit)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from maxsim.cli.common import use_backend, user_errors
from maxsim.cli.index import (
    BACKEND,
    BATCH_SIZE,
    DEVICE,
    DPI,
    DTYPE,
    ID_COLUMN,
    INPUT_HELP,
    METADATA_COLUMNS,
    STRICT,
    TEXT_COLUMN,
    TITLE_COLUMN,
    print_summary,
    read_documents,
    reported_warnings,
    write_corpus,
)
from maxsim.cli.registry import app

INDEX_HELP = "A collection made by `maxsim index` (a folder, or a sharded collection)."


@app.command()
def add(
    index: Path = typer.Argument(..., help=INDEX_HELP),
    input: Path = typer.Argument(..., help=INPUT_HELP),
    upsert: bool = typer.Option(False, "--upsert", help="Replace the documents whose id is already there "
                                                        "(text, passages, vectors, metadata) instead of refusing."),
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
):
    """Add the documents of INPUT to INDEX in one commit (an id already there is an error unless
    --upsert), with the folder's model and passage settings (a page collection: the pages of INPUT);
    then print the summary."""
    from maxsim.opener import open_collection

    use_backend(backend)
    with user_errors(index):
        collection = open_collection(index, device=device, dtype=dtype)
    with collection:
        with user_errors(index):
            before = collection.stats()
        with user_errors(input):
            corpus = read_documents(input, collection.modality, strict, dpi, before["hybrid"],
                                    (id_column, text_column, title_column, metadata_column))
        with user_errors(index), reported_warnings() as caught:
            start = time.perf_counter()
            write_corpus(collection.upsert if upsert else collection.add, corpus, batch_size)
            after = collection.stats()
    print_summary(corpus, before, after, time.perf_counter() - start, caught)
    typer.echo(f"{'upserted' if upsert else 'added'} {len(corpus)} documents -> {index} (version {after['version']})")


@app.command()
def remove(
    index: Path = typer.Argument(..., help=INDEX_HELP),
    ids: list[str] = typer.Argument(..., help="Ids of the documents to remove."),
):
    """Remove documents from INDEX by id, in one commit; an unknown id is an error (exit 3) and
    removes nothing."""
    from maxsim.opener import open_collection

    with user_errors(index):
        with open_collection(index) as retriever:
            retriever.remove(ids)
            stats = retriever.stats()
    typer.echo(f"removed {len(set(ids))} documents from {index}; {stats['documents']} left "
               f"(version {stats['version']})")
