"""``load_model``: a model by the name a folder, the CLI or a manifest gives it."""

from __future__ import annotations


def load_model(name: str, device: str | None = None, dtype: str | None = None, backend: str | None = None):
    """"default" -> ``MultiVectorEncoder.default()``, else ``MultiVectorEncoder(name)`` (a folder or
    a hub id); ``dtype`` and ``backend`` None keep the encoder's defaults."""
    from maxsim.models.encoder import MultiVectorEncoder

    kwargs = {"device": device, **{k: v for k, v in (("dtype", dtype), ("backend", backend)) if v is not None}}
    return MultiVectorEncoder.default(**kwargs) if name == "default" else MultiVectorEncoder(name, **kwargs)
