"""Base class for pipeline modules: declared config keys, saved into their own folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from maxsim.errors import ModelLoadError

WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAMES = ("pytorch_model.bin", "model.pt")


class Module(torch.nn.Module):
    """A step of the encoder pipeline.

    Subclasses declare ``config_keys`` (the attributes written to ``config.json``) and
    ``st_type`` (the class reference sentence-transformers 6 writes in ``modules.json``).
    ``forward(features: dict, task: str) -> dict`` transforms the feature dict in place.
    """

    config_keys: tuple[str, ...] = ()
    st_type: str = ""
    folder_name: str = ""

    def get_config(self) -> dict:
        return {key: getattr(self, key) for key in self.config_keys}

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", self.get_config())
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if state:
            save_file(state, str(folder / WEIGHTS_NAME))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=4, ensure_ascii=False)
        f.write("\n")


def read_json(path: Path) -> dict:
    """Read a JSON file; a missing or malformed file raises ModelLoadError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing: the model folder is incomplete; re-download or re-save it.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); the file is corrupt, re-download it.") from None


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Load a module's weights: safetensors first, else a pickle file through
    ``torch.load(weights_only=True)`` (no arbitrary code runs)."""
    path = folder / WEIGHTS_NAME
    if path.exists():
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise ModelLoadError(f"{path} could not be read ({exc}); the file is corrupt, re-download it.") from None
    for name in PICKLE_WEIGHTS_NAMES:
        path = folder / name
        if path.exists():
            return load_pickle_weights(path)
    raise ModelLoadError(f"no weights in {folder}: expected {WEIGHTS_NAME} (or {' / '.join(PICKLE_WEIGHTS_NAMES)}).")


def load_pickle_weights(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"{path} was refused by torch's weights_only loader ({type(exc).__name__}: {exc}). "
            "It may hold code rather than plain tensors; convert it to safetensors from a trusted source."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} does not hold a state dict (got {type(state).__name__}).")
    return state
