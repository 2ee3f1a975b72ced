"""``maxsim index INPUT --output DIR --ray``: the command-line side of ``build_collection``."""

from __future__ import annotations

from pathlib import Path

import typer


def index_on_ray(input: Path, output: Path, model: str, kind: str, hybrid: bool, batch_size: int,
                 address: str | None, workers: int | None, shards: int | None) -> None:
    """Build the sharded collection OUTPUT from INPUT on Ray and print what was done."""
    from maxsim.cli.common import human_bytes, user_errors
    from maxsim.distributed import ShardedRetriever, build_collection

    def progress(done: int, total: int, row) -> None:
        typer.echo(f"encoded {done}/{total} documents", err=True)

    with user_errors(input):
        out = build_collection(input, output, model=model, index=kind, hybrid=hybrid, shards=shards,
                               workers=workers, address=address, batch_size=batch_size, progress=progress)
        with ShardedRetriever.open(output) as collection:
            stats = collection.stats()
    typer.echo(f"indexed {stats['documents']} documents ({out['encoded']} encoded now) into {out['shards']} shards "
               f"with {out['workers']} Ray workers, {stats['tokens']} token vectors, "
               f"{human_bytes(stats['bytes_on_disk'])} on disk, in {out['seconds']:.1f} s "
               f"({out['encoded'] / max(out['seconds'], 1e-9):.1f} documents/s) -> {output}")
