"""Helpers shared by the commands: option help, turning library errors into messages, sizes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

DEFAULT_MODEL = "default"
MODEL_HELP = "A model folder, a Hugging Face hub id, or 'default' for the embedded all-MiniLM-L6-v2."


def fail(message: str, code: int = 1):
    """Print ``message`` to stderr and stop with exit status ``code``."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors():
    """Turn the library's user-facing exceptions (bad paths, malformed input, bad arguments) into a
    one-line message on stderr and exit status 1 instead of a traceback."""
    from maxsim import ModelLoadError

    try:
        yield
    except (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as error:
        fail(_describe(error))
    except (ValueError, TypeError, KeyError, ModelLoadError) as error:
        fail(error.args[0] if len(error.args) == 1 else str(error))


def folder_bytes(folder: Path) -> int:
    """Total size in bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _describe(error: OSError) -> str:
    if error.filename and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}."
    return str(error)
