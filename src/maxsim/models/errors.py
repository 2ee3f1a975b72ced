"""Exceptions raised while loading or saving models."""


class ModelLoadError(OSError):
    """A model folder or hub id could not be read; the message names the file and the fix."""
