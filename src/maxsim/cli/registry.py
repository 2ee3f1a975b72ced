"""The ``maxsim`` typer application and where each command lives: a command module registers its
command(s) on ``app`` when imported, and ``load_commands`` imports the one a command line runs (a
search does not import the training or serving modules), or all of them."""

from __future__ import annotations

import functools
import importlib

import typer

# command name -> the module of this package that registers it
COMMANDS = {"add": "add", "remove": "add", "check": "check", "encode": "encode", "evaluate": "evaluate",
            "index": "index", "list": "listing", "mcp": "mcp", "quickstart": "quickstart", "rerank": "rerank",
            "search": "search", "serve": "serve", "train": "train"}


class _Commands(typer.Typer):
    """A ``typer.Typer`` whose ``command()`` runs each command inside ``user_errors``."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(function):
            @functools.wraps(function)
            def guarded(*call_args, **call_kwargs):
                from maxsim.cli.common import user_errors

                with user_errors():
                    return function(*call_args, **call_kwargs)

            register(guarded)
            return function

        return decorator


app = _Commands(help="maxsim: multi-vector (ColBERT-style) retrieval from the command line.",
                no_args_is_help=True, add_completion=False)


@app.callback()
def _commands() -> None:
    """A group of commands even while one command alone is loaded."""


def load_commands(name: str | None = None) -> typer.Typer:
    """``app`` with the command ``name`` registered, or every command (``name`` None or unknown)."""
    for module in [COMMANDS[name]] if name in COMMANDS else sorted(set(COMMANDS.values())):
        importlib.import_module(f"maxsim.cli.{module}")
    return app
