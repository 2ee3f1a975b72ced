"""The ``maxsim`` command line (typer). Each command lives in its own module of this package."""

import typer

app = typer.Typer(help="maxsim: multi-vector (ColBERT-style) retrieval from the command line.",
                  no_args_is_help=True, add_completion=False)


def main() -> None:
    app()


# Command modules register themselves on ``app`` when imported.
from maxsim.cli import commands  # noqa: E402,F401
