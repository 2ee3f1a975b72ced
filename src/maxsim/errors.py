"""One exception tree for everything maxsim raises on purpose (catch ``MaxsimError``).

Each subclass maps to one HTTP status (``status``, used by the service) and one exit status of the
command line (``exit_code``, printed as one ``error: …`` line). The classes also derive from the
builtin exception users would otherwise catch (``ValueError``, ``KeyError``, ``FileNotFoundError``),
so ``except ValueError`` keeps working.

| class | builtin base | HTTP | CLI exit |
|---|---|---|---|
| ``InvalidInputError`` | ValueError, TypeError | 422 | 2 |
| ``LimitExceededError`` | ValueError | 413 | 2 |
| ``NotFoundError`` | KeyError, FileNotFoundError | 404 | 3 |
| ``AlreadyExistsError`` | ValueError, FileExistsError | 409 | 4 |
| ``CorruptedError`` | — | 503 | 5 |
| ``LockedError`` | — | 503 | 6 |
| ``BusyError`` | — | 503 | 6 |
| ``ModelLoadError`` | OSError | 422 | 7 |
"""

from __future__ import annotations


class MaxsimError(Exception):
    """Root of maxsim's errors; ``str(error)`` names the bad item (file, id, field) and the fix."""

    status = 500
    exit_code = 1

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class InvalidInputError(MaxsimError, ValueError, TypeError):
    """An argument, request field, filter or input record is malformed."""

    status = 422
    exit_code = 2


class LimitExceededError(InvalidInputError):
    """An input is larger than a configured limit (text length, batch size, id length, metadata size)."""

    status = 413


class NotFoundError(MaxsimError, KeyError, FileNotFoundError):
    """An id, a folder or a file that the caller named does not exist."""

    status = 404
    exit_code = 3


class AlreadyExistsError(MaxsimError, ValueError, FileExistsError):
    """An id or a folder that must be new already exists."""

    status = 409
    exit_code = 4


class CorruptedError(MaxsimError):
    """A stored file is missing, truncated or fails its checksum; the message names the file."""

    status = 503
    exit_code = 5


class LockedError(MaxsimError):
    """Another process holds a folder's writer lock for longer than the wait allowed."""

    status = 503
    exit_code = 6


class BusyError(MaxsimError):
    """The service has as many requests waiting as it queues (or a write waited its whole allowance)."""

    status = 503
    exit_code = 6


class ModelLoadError(MaxsimError, OSError):
    """A model folder or hub id could not be read; the message names the file and the fix."""

    status = 422
    exit_code = 7


__all__ = ["AlreadyExistsError", "BusyError", "CorruptedError", "InvalidInputError", "LimitExceededError",
           "LockedError", "MaxsimError", "ModelLoadError", "NotFoundError"]
