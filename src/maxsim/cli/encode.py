"""``maxsim encode``: token vectors of a collection, written to one safetensors file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from maxsim.cli.common import (
    BACKEND_HELP,
    DEFAULT_MODEL,
    DEVICE_HELP,
    DTYPE_HELP,
    MODEL_HELP,
    fail,
    human_bytes,
    use_backend,
    user_errors,
)
from maxsim.cli.registry import app

FORMAT = "maxsim-token-vectors-1"


@app.command()
def encode(
    input: Path = typer.Argument(..., help="Folder of .txt/.md files, .jsonl/.csv (id, text), or BEIR folder."),
    output: Path = typer.Option(..., "--output", "-o", help="The .safetensors file to write."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    task: str = typer.Option("document", help="'document' or 'query': which preprocessing to use."),
    batch_size: int = typer.Option(32, min=1, help="Texts per forward pass."),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP),
    dtype: str = typer.Option(None, "--dtype", help=DTYPE_HELP),
    backend: str = typer.Option(None, "--backend", help=BACKEND_HELP),
):
    """Encode INPUT to token vectors in one safetensors file.

    Tensors: 'embeddings' (total tokens, dim) float32 and 'offsets' (n + 1,) int64, text i owning
    rows offsets(i) to offsets(i + 1); the ids are in the file's metadata (JSON list under 'ids')."""
    import numpy as np
    from safetensors.numpy import save_file

    from maxsim.io import read_corpus
    from maxsim.models.loading import load_model

    if output.suffix != ".safetensors":
        fail(f"--output {output} must end in .safetensors.")
    if task not in ("document", "query"):
        fail(f"--task must be 'document' or 'query', got {task!r}.")
    use_backend(backend)
    with user_errors():
        corpus = read_corpus(input)
        encoder = load_model(model, device=device, dtype=dtype)
        start = time.perf_counter()
        vectors = encoder.encode(corpus.texts, task=task, batch_size=batch_size, show_progress_bar=True)
    seconds = time.perf_counter() - start
    lengths = np.array([len(v) for v in vectors], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    embeddings = np.concatenate(vectors).astype(np.float32) if offsets[-1] else np.zeros((0, encoder.dim), np.float32)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    save_file({"embeddings": embeddings, "offsets": offsets}, str(partial),
              metadata={"format": FORMAT, "model": model, "task": task, "ids": json.dumps(corpus.ids)})
    os.replace(partial, output)  # readers never see a half-written file
    typer.echo(f"encoded {len(corpus)} texts, {int(offsets[-1])} token vectors of dim {encoder.dim} "
               f"in {seconds:.1f} s -> {output} ({human_bytes(output.stat().st_size)})")
