"""Resolve a local folder or a Hugging Face hub id to a local folder."""

from __future__ import annotations

import os
from pathlib import Path

from maxsim.errors import ModelLoadError

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "artifact.metadata", "*/*.json",
                  "*/*.safetensors", "pytorch_model.bin", "*/pytorch_model.bin", "*.md"]


def resolve_model_folder(name_or_path: str | os.PathLike, revision: str | None = None, token: str | None = None,
                         cache_folder: str | None = None, local_files_only: bool = False) -> Path:
    """A local folder is returned as is; anything else is downloaded from the hub (only the files a
    model needs). Offline, or an unknown id, raises ModelLoadError at once instead of hanging."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model folder {name} does not exist (and it is not a hub id like 'org/name').")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, token=token, cache_dir=cache_folder,
                                      local_files_only=local_files_only, allow_patterns=ALLOW_PATTERNS))
    except Exception as exc:  # huggingface_hub raises many types: offline, 404, gated, ...
        raise ModelLoadError(
            f"could not fetch {name!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the id and your connection, or pass a local folder."
        ) from None
