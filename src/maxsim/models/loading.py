"""``load_model``: a model by the name a folder, the CLI or a manifest gives it."""

from __future__ import annotations


def load_model(name: str, device: str | None = None, dtype: str | None = None, backend: str | None = None):
    """"default" -> ``MultiVectorEncoder.default()``; a page-retrieval checkpoint (a folder or a hub id
    whose files say ColPali, ColQwen2 or ColModernVBert) -> ``PageEncoder``; else
    ``MultiVectorEncoder``. ``dtype`` and ``backend`` None keep the encoder's defaults (page models
    run in torch)."""
    from maxsim.models.encoder import MultiVectorEncoder

    kwargs = {"device": device} if dtype is None else {"device": device, "dtype": dtype}
    text = {**kwargs, **({"backend": backend} if backend is not None else {})}
    if name == "default":
        return MultiVectorEncoder.default(**text)
    from maxsim.models.hub import resolve_model_folder
    from maxsim.models.pages import PageEncoder, page_family

    folder = resolve_model_folder(name)
    return PageEncoder(folder, **kwargs) if page_family(folder) else MultiVectorEncoder(folder, **text)


def model_modality(name: str) -> str:
    """What the documents of the model ``name`` are, read from its files without loading it:
    "image" for a page-retrieval checkpoint, else "text"."""
    if name == "default":
        return "text"
    from maxsim.models.hub import resolve_model_folder
    from maxsim.models.pages import page_family

    return "image" if page_family(resolve_model_folder(name)) else "text"
