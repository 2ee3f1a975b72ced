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
        local_files_only = local_files_only or not _hub_answers(name, revision, token)
        return Path(snapshot_download(name, revision=revision, token=token, cache_dir=cache_folder,
                                      local_files_only=local_files_only, allow_patterns=ALLOW_PATTERNS))
    except Exception as exc:  # huggingface_hub raises many types: offline, 404, gated, ...
        raise ModelLoadError(
            f"could not fetch {name!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the id and your connection, or pass a local folder."
        ) from None


def _hub_answers(name: str, revision: str | None, token: str | None) -> bool:
    """Whether the hub answers about ``name`` within ``HF_HUB_ETAG_TIMEOUT`` seconds (huggingface_hub's
    own calls have no timeout: a hub that accepts connections and never answers would hang them).
    False (offline, no answer, no connection): the cached copy is used, if there is one."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        HfApi().model_info(name, revision=revision, token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:  # it answered (unknown id, gated ...): the download says so
        return True
    except Exception:  # no answer in time, no connection
        return False
    return True
