"""The ``maxsim`` command line (typer). Each command lives in its own module of this package
(``maxsim.cli.registry``); ``maxsim.cli.app`` is the application with every command.

Every command runs inside ``common.user_errors``: whatever escapes it is printed as one
``error: …`` line with a documented exit status (docs/cli.md), never as a traceback.
"""

import atexit
import contextlib
import os
import sys
import threading

QUICK_EXIT = ("search", "list")  # short reads whose wait is mostly the process's start and end


def main() -> None:
    """The ``maxsim`` console script: the command line's command alone loaded and run; ``QUICK_EXIT``
    commands then end with ``quick_exit`` (others may leave native threads, e.g. torch.distributed's,
    that only a normal exit ends cleanly)."""
    from maxsim.cli.registry import load_commands

    command = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        load_commands(command)()
    except SystemExit as exc:
        if command not in QUICK_EXIT:
            raise
        quick_exit(exc.code)


def quick_exit(code) -> None:
    """Exit with ``code`` (a ``SystemExit`` code) once the atexit handlers ran and the output is
    flushed, without the interpreter's teardown of every loaded module (torch's and OpenVINO's take
    ~0.4 s): a normal exit while another non-daemon thread still runs."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if not isinstance(code, int) and code is not None:
        print(code, file=sys.stderr)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`maxsim list DIR | head -1`)
            stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def __getattr__(name: str):
    """``app``: the typer application with every command registered."""
    if name != "app":
        raise AttributeError(f"module 'maxsim.cli' has no attribute {name!r}")
    from maxsim.cli.registry import load_commands

    return load_commands()
