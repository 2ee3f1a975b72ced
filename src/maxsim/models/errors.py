"""Exceptions raised while loading or saving models."""

from maxsim.errors import MaxsimError


class ModelLoadError(MaxsimError, OSError):
    """A model folder or hub id could not be read; the message names the file and the fix."""

    status = 422
    exit_code = 7
