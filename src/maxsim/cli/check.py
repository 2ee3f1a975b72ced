"""``maxsim check``: verify every stored byte of a collection (``maxsim.search.check``), and repair
what can be rebuilt."""

from __future__ import annotations

from pathlib import Path

import typer

from maxsim.cli.common import fail, user_errors
from maxsim.cli.registry import app
from maxsim.errors import CorruptedError


@app.command()
def check(
    index: Path = typer.Argument(..., help="A collection made by `maxsim index` (a folder or a sharded one)."),
    repair: bool = typer.Option(False, "--repair", help="Rebuild what can be rebuilt from what is intact (the "
                                                        "store's indexes, the metadata field index, BM25), then "
                                                        "check again."),
):
    """Check INDEX in full: its manifest, every row and index of its store, every index file's CRC-32,
    the agreement of store, index and BM25. Prints each problem (naming the file) and exits 5 if any
    remains; 0 when all is intact."""
    from maxsim import opener as checking

    with user_errors(index):
        if not index.is_dir():
            from maxsim.errors import NotFoundError

            raise NotFoundError(f"{index} is not a folder: pass a collection made by `maxsim index`.")
        if repair:
            for line in checking.repair(index):
                typer.echo(f"repaired: {line}")
        findings = checking.check(index)
    for finding in findings:
        typer.echo(f"damaged: {finding}", err=True)
    if findings:
        fail(str(CorruptedError(f"{index}: {len(findings)} problem(s) found; "
                                + ("restore the damaged files from a backup or rebuild with `maxsim index`."
                                   if repair or not any(f.repairable for f in findings)
                                   else "run `maxsim check --repair` to rebuild what can be rebuilt."))),
             CorruptedError.exit_code)
    typer.echo(f"ok: {index}: every file checked, nothing damaged.")
