"""colpali-engine's checkpoint layout, read into the transformers-native ``*ForRetrieval`` classes
(colpali-engine itself is never imported).

A merged checkpoint: ``config.json`` is the vision-language model's config with ``architectures``
``["ColPali"]`` (PaliGemma), ``["ColQwen2"]`` (Qwen2-VL) or ``["ColModernVBert"]``; the weights are
colpali-engine's module names: ``model.vision_tower.*``, ``model.multi_modal_projector.*``,
``model.language_model.model.*`` (ColPali; ``model.model.*`` in newer saves), ``model.*`` or
``language_model.*`` and ``visual.*`` (ColQwen2), ``model.*`` (ColModernVBert), optionally under
``base_model.model.``, and the projection ``custom_text_proj`` (its rows: the vector dimension). The
language-model head (``lm_head``) is not used and dropped. A LoRA adapter (peft's
``adapter_config.json`` + ``adapter_model.safetensors``, the usual way ColPali and ColQwen2 are
published) is merged into its base checkpoint (``base_model_name_or_path``: a folder or a hub id):
``W += B @ A * lora_alpha / r`` (``/ sqrt(r)`` with ``use_rslora``); ``modules_to_save`` weights
replace the base's.

Queries and pages are then prepared by the family's transformers processor, built from the folder's
image processor and tokenizer files: its prompts are those of the transformers conversions the
ColPali authors published (``vidore/colpali-v1.3-hf``, ``vidore/colqwen2-v1.0-hf``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

from maxsim.errors import ModelLoadError
from maxsim.models.hub import resolve_model_folder
from maxsim.models.modules.base import read_json

ENGINE_ARCHITECTURES = {"ColPali": "colpali", "ColQwen2": "colqwen2", "ColModernVBert": "colmodernvbert"}
CONFIGS = {"colpali": "ColPaliConfig", "colqwen2": "ColQwen2Config", "colmodernvbert": "ColModernVBertConfig"}
PROCESSORS = {"colpali": "ColPaliProcessor", "colqwen2": "ColQwen2Processor",
              "colmodernvbert": "ColModernVBertProcessor"}
# colpali-engine weight names -> the transformers-native class's, applied in order
RENAMES = {
    "colpali": [(r"^model\.language_model\.model\.", "vlm.language_model."),
                (r"^model\.model\.language_model\.", "vlm.language_model."),
                (r"^model\.(model\.)?(vision_tower|multi_modal_projector)\.", r"vlm.\2.")],
    "colqwen2": [(r"^(model|language_model)\.", "vlm.language_model."), (r"^visual\.", "vlm.visual.")],
    "colmodernvbert": [(r"^model\.", "vlm.")],
}
DROPPED = re.compile(r"(^|\.)lm_head\.")
ADAPTER = "adapter_config.json"


def engine_family(root: Path) -> str | None:
    """The family of a colpali-engine checkpoint or LoRA adapter folder, else None."""
    root = Path(root)
    if (root / "config.json").is_file():
        architectures = read_json(root / "config.json").get("architectures") or []
        return next((ENGINE_ARCHITECTURES[a] for a in architectures if a in ENGINE_ARCHITECTURES), None)
    if (root / ADAPTER).is_file():
        return engine_family(base_folder(root))
    return None


def read_engine_layout(root: Path, family: str):
    from maxsim.models.pages.layout import PageSpec

    return PageSpec(Path(root), family, layout="colpali-engine")


def base_folder(root: Path) -> Path:
    """The base checkpoint of the adapter folder ``root``: a folder (absolute, or relative to ``root``) or a hub id."""
    base = read_json(Path(root) / ADAPTER).get("base_model_name_or_path")
    if not base:
        raise ModelLoadError(f"{Path(root) / ADAPTER} names no base_model_name_or_path.")
    local = Path(root) / base
    return local if local.is_dir() else resolve_model_folder(base)


def load_engine_model(root: Path, family: str) -> transformers.PreTrainedModel:
    """The float32 transformers-native model of a colpali-engine checkpoint (LoRA adapter merged)."""
    root = Path(root)
    adapter = (root / ADAPTER).is_file()
    base = base_folder(root) if adapter else root
    state = _native_names(_weights(base), family, base)
    if adapter:
        _merge_adapter(state, root, family)
    vlm_config = {k: v for k, v in read_json(base / "config.json").items() if k not in ("architectures", "auto_map")}
    dim = state["embedding_proj_layer.weight"].shape[0]
    config = getattr(transformers, CONFIGS[family])(vlm_config=vlm_config, embedding_dim=int(dim))
    model_class = getattr(transformers, CONFIGS[family].replace("Config", "ForRetrieval"))
    model = model_class(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not DROPPED.search(k)]
    if missing or unexpected:
        raise ModelLoadError(f"{base}: the colpali-engine weights do not fit {model_class.__name__} (missing "
                             f"{missing[:3]}, unexpected {unexpected[:3]}); is it a {family} checkpoint?")
    return model.float().eval()


def engine_processor(root: Path, family: str):
    """The family's transformers processor from the folder's image processor and tokenizer files."""
    base = base_folder(root) if (Path(root) / ADAPTER).is_file() else Path(root)
    image_processor = transformers.AutoImageProcessor.from_pretrained(str(root))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root))
    vision = read_json(base / "config.json").get("vision_config") or {}
    kwargs = {}
    if family == "colpali" and not hasattr(image_processor, "image_seq_length"):
        image_processor.image_seq_length = (vision["image_size"] // vision["patch_size"]) ** 2
    if family == "colmodernvbert":
        crop = image_processor.max_image_size["longest_edge"] // vision["patch_size"]
        shuffle = read_json(base / "config.json").get("pixel_shuffle_factor", 4)
        kwargs["image_seq_len"] = (crop // shuffle) ** 2
    return getattr(transformers, PROCESSORS[family])(image_processor=image_processor, tokenizer=tokenizer, **kwargs)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors checkpoint (one file or an index of shards), by saved name."""
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else \
        ["model.safetensors"]
    state = {}
    for name in files:
        state.update(_weights_file(folder / name))
    return state


def native_name(name: str, family: str) -> str:
    """One colpali-engine weight name -> the transformers-native name (``lm_head`` names kept as is)."""
    name = re.sub(r"^base_model\.model\.", "", name)
    if name.startswith("custom_text_proj."):
        return "embedding_proj_layer." + name[len("custom_text_proj."):]
    for pattern, replacement in RENAMES[family]:
        renamed = re.sub(pattern, replacement, name)
        if renamed != name:
            return renamed
    return name


def _native_names(state: dict, family: str, source: Path) -> dict[str, torch.Tensor]:
    out = {native_name(k, family): v.float() for k, v in state.items() if not DROPPED.search(k)}
    if "embedding_proj_layer.weight" not in out:
        raise ModelLoadError(f"{source}: no custom_text_proj weights: not a colpali-engine {family} checkpoint.")
    return out


def _merge_adapter(state: dict, root: Path, family: str) -> None:
    """Add the LoRA deltas of the adapter folder ``root`` to ``state`` (native names) in place."""
    config = read_json(root / ADAPTER)
    if config.get("use_dora") or config.get("rank_pattern") or config.get("alpha_pattern") \
            or config.get("fan_in_fan_out"):
        raise ModelLoadError(f"{root / ADAPTER}: DoRA, per-module ranks and fan_in_fan_out adapters are not "
                             "supported; merge the adapter with peft and load the merged folder.")
    rank = config["r"]
    scale = config.get("lora_alpha", rank) / (math.sqrt(rank) if config.get("use_rslora") else rank)
    adapter = _weights_file(root / "adapter_model.safetensors")
    weights = {native_name(k, family): v.float() for k, v in adapter.items()}
    for name, tensor in weights.items():
        if ".lora_B." in name:
            continue
        if ".lora_A." in name:
            target = name.replace(".lora_A.weight", ".weight")
            up = weights[name.replace(".lora_A.", ".lora_B.")]
            _check_target(state, target, root)
            state[target] = state[target] + (up @ tensor) * scale
        else:
            _check_target(state, name, root)
            state[name] = tensor


def _weights_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types; a missing file too
        raise ModelLoadError(f"{path} could not be read ({type(exc).__name__}: {exc}); re-download it.") from None


def _check_target(state: dict, name: str, root: Path) -> None:
    if name not in state:
        raise ModelLoadError(f"{root / 'adapter_model.safetensors'}: {name!r} is not a weight of the base model; "
                             "the adapter does not belong to this base.")
