"""``maxsim index``: build a retriever folder from a collection on disk."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from maxsim.cli import app
from maxsim.cli.common import DEFAULT_MODEL, MODEL_HELP, human_bytes, user_errors


@app.command()
def index(
    input: Path = typer.Argument(..., help="Folder of .txt/.md files, .jsonl/.csv (id, text), or BEIR folder."),
    output: Path = typer.Option(..., "--output", "-o", help="The retriever folder to create (new or empty)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    kind: str = typer.Option("exact", "--index", help="'exact' (every vector) or 'plaid' (compressed)."),
    hybrid: bool = typer.Option(True, "--hybrid/--no-hybrid", help="Also keep a BM25 index for hybrid search."),
    batch_size: int = typer.Option(32, min=1, help="Documents per forward pass."),
    ray: bool = typer.Option(False, "--ray", help="Encode on a Ray cluster into a sharded collection (docs/scale.md)."),
    address: str = typer.Option(None, "--address", help="With --ray: a running cluster (default: start a local one)."),
    workers: int = typer.Option(None, "--workers", min=1, help="With --ray: encoder workers (default: GPUs, else CPUs)."),
    shards: int = typer.Option(None, "--shards", min=1, help="With --ray: shard folders (default: --workers)."),
):
    """Encode every document of INPUT and store vectors, texts and metadata in OUTPUT."""
    if ray:
        from maxsim.distributed.cli import index_on_ray

        return index_on_ray(input, output, model, kind, hybrid, batch_size, address, workers, shards)
    from maxsim.io import read_corpus
    from maxsim.search import Retriever
    from maxsim.search.retriever import load_model

    with user_errors(input):
        corpus = read_corpus(input)
        typer.echo(f"read {len(corpus)} documents from {input}; loading model {model!r}")
        encoder = load_model(model)
        start = time.perf_counter()
        with Retriever.create(output, encoder, index=kind, hybrid=hybrid, model_name=model) as retriever:
            retriever.add(corpus.texts, ids=corpus.ids, metadata=corpus.metadata, batch_size=batch_size,
                          show_progress_bar=True)
            stats = retriever.stats()
    seconds = time.perf_counter() - start
    typer.echo(f"indexed {stats['documents']} documents, {stats['tokens']} token vectors, "
               f"{human_bytes(stats['bytes_on_disk'])} on disk, in {seconds:.1f} s "
               f"({stats['documents'] / max(seconds, 1e-9):.1f} documents/s) -> {output}")
