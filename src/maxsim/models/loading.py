"""``load_model``: a model by the name a folder, the CLI or a manifest gives it."""

from __future__ import annotations


def load_model(name: str, device: str | None = None, dtype: str | None = None):
    """"default" -> ``MultiVectorEncoder.default()``, else ``MultiVectorEncoder(name)`` (a folder or
    a hub id); ``dtype`` None keeps the encoder's default."""
    from maxsim.models.encoder import MultiVectorEncoder

    kwargs = {"device": device} if dtype is None else {"device": device, "dtype": dtype}
    return MultiVectorEncoder.default(**kwargs) if name == "default" else MultiVectorEncoder(name, **kwargs)
