"""The ``maxsim`` command line (typer). Each command lives in its own module of this package.

Every command runs inside ``common.user_errors``: whatever escapes it is printed as one
``error: …`` line with a documented exit status (docs/cli.md), never as a traceback.
"""

import functools

import typer


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


def main() -> None:
    app()


# Command modules register themselves on ``app`` when imported.
from maxsim.cli import commands  # noqa: E402,F401
