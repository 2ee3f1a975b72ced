"""What the commands share: option help, turning errors into one ``error: …`` line, sizes."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import sys
from pathlib import Path

import click
import typer

DEFAULT_MODEL = "default"
MODEL_HELP = "A model folder, a Hugging Face hub id, or 'default' for the embedded all-MiniLM-L6-v2."
DEVICE_HELP = "Where the model runs: cpu, cuda, cuda:1, mps, ... (default: cuda when available, else cpu)."
DTYPE_HELP = ("Encoding precision within the backend: auto (the default: OpenVINO's bfloat16 hint where the backend "
              "is auto or openvino on a CPU with AMX / AVX512-BF16, ~3x faster at nDCG@10 within 0.001; float32 "
              "elsewhere, torch included; MAXSIM_DTYPE=float32 pins the exact path), float32, mixed (bfloat16 "
              "products, float32 accumulation), bfloat16, float16 (whole model cast, torch only).")
BACKEND_HELP = ("Where the model's backbone runs: auto (the default: OpenVINO where it is the fast path, i.e. "
                "bfloat16 on CPUs with AMX / AVX512-BF16; torch elsewhere), torch, openvino, onnx (CPU, "
                "inference only). Sets MAXSIM_BACKEND for this run.")
BACKEND_ENV = "MAXSIM_BACKEND"
TRACEBACK_ENV = "MAXSIM_TRACEBACK"  # set to 1 to see the traceback of an unexpected error
SURROGATE = re.compile("[\ud800-\udfff]")
FUSION = typer.Option("rrf", "--fusion", help="With --hybrid: rrf (reciprocal ranks), convex (normalised scores "
                                              "weighed by --alpha) or score (docs/search.md, Fusion).")
ALPHA = typer.Option(None, "--alpha", min=0.0, max=1.0, help="With --fusion convex: the weight of MaxSim "
                                                             "(default 0.75).")
PRF = typer.Option(False, "--prf", help="ColBERT-PRF: expand each query from its top 3 documents' token vectors "
                                        "and search again (docs/search.md).")

# exit statuses of errors that are not maxsim's own, as their maxsim.errors counterparts; others: 1
EXIT_CODES = ((FileNotFoundError, 3), (FileExistsError, 4), (sqlite3.Error, 5), (UnicodeDecodeError, 2))
# what else exits with each status (the exit-status table of docs/cli.md, ``exit_status_table``)
ALSO = {0: "success", 1: "any other error (`error: … unexpected RuntimeError: …`)",
        2: "typer's usage errors; a file that is not UTF-8", 3: "a missing file or folder",
        4: "an existing file where a new one is needed", 5: "SQLite errors", 130: "interrupted (Ctrl-C)",
        141: "the output's reader stopped reading (`maxsim list DIR` piped into `head`): no message"}
PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell reports for a writer whose pipe closed


def use_backend(backend: str | None) -> None:
    """``--backend``: what backend="auto" stands for in this process and those it starts
    ($MAXSIM_BACKEND; "auto" unsets it); an unknown name fails, naming the choices."""
    if backend is None:
        return
    from maxsim.models.runtimes import BACKENDS

    if backend not in BACKENDS:
        fail(f"--backend {backend!r} is not known; use one of {', '.join(BACKENDS)}.", 2)
    if backend == "auto":
        os.environ.pop(BACKEND_ENV, None)
    else:
        os.environ[BACKEND_ENV] = backend


def fail(message: str, code: int = 1):
    """Print ``message`` to stderr and stop with exit status ``code``."""
    typer.secho(f"error: {printable(message)}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors(subject: str | Path | None = None):
    """Print any error escaping the block as one ``error: …`` line on stderr and exit with its
    status: a ``MaxsimError``'s ``exit_code``, else per ``EXIT_CODES`` (1 for the rest); never
    a traceback (unless ``MAXSIM_TRACEBACK=1``). ``subject``, the file or folder the command works
    on, prefixes messages that do not name one (decoding and SQLite errors)."""
    from maxsim.errors import MaxsimError

    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.Abort):
        raise  # already reported (fail) or typer's own usage error
    except KeyboardInterrupt:
        fail("interrupted.", 130)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush writes nowhere
        raise typer.Exit(PIPE_CLOSED) from None
    except MaxsimError as error:
        fail(str(error), error.exit_code)
    except Exception as error:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        fail(describe(error, subject), next((code for kind, code in EXIT_CODES if isinstance(error, kind)), 1))


def exit_status_table() -> str:
    """The exit-status table of docs/cli.md: each ``maxsim.errors`` class with its ``exit_code`` and
    HTTP ``status``, and what else (``ALSO``) exits with that status."""
    from maxsim import errors

    classes = [getattr(errors, name) for name in sorted(errors.__all__)]
    rows = ["| exit | `maxsim.errors` type (HTTP status) | also |", "|---|---|---|"]
    for code in sorted({c.exit_code for c in classes} | set(ALSO)):
        types = ", ".join(f"`{c.__name__}` ({c.status})" for c in classes if c.exit_code == code)
        rows.append(f"| {code} | {types or '—'} | {ALSO.get(code, '—')} |")
    return "\n".join(rows)


def describe(error: Exception, subject) -> str:
    """One line for an error that is not a ``MaxsimError``."""
    prefix = f"{subject}: " if subject is not None else ""
    if isinstance(error, UnicodeDecodeError):
        return f"{prefix}not {error.encoding} text (byte {error.object[error.start:error.start + 1]!r} at offset " \
               f"{error.start}): convert it to UTF-8."
    if isinstance(error, sqlite3.Error):
        return f"{prefix}its database is damaged or unreadable ({error}): restore the folder from a backup or " \
               "rebuild it with `maxsim index`."
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}."
    if isinstance(error, (ValueError, TypeError, KeyError)):
        return prefix + (str(error.args[0]) if len(error.args) == 1 else str(error))
    return f"{prefix}unexpected {type(error).__name__}: {error} (set {TRACEBACK_ENV}=1 to see where)."


def printable(text: str) -> str:
    """``text`` with lone surrogates (which no terminal encoding takes) written as ``\\udXXX``."""
    return SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
