"""Published checkpoint layouts <-> one internal spec. All format knowledge lives here.

Read: sentence-transformers 6 (``modules.json`` + ``query_expansion`` dict), the reference card's
pre-release layout (flat ``do_query_expansion`` / ``attend_to_expansion_tokens``), PyLate
(``model_type: ColBERT`` with top-level prefixes and lengths), Stanford ColBERT ``HF_ColBERT``
checkpoints (``artifact.metadata`` + root ``linear.weight``), and a bare Hugging Face encoder.
Write: the sentence-transformers 6 layout.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from maxsim.errors import InvalidInputError, ModelLoadError
from maxsim.models.modules.base import PICKLE_WEIGHTS_NAMES, WEIGHTS_NAME, read_json, write_json
from maxsim.scoring.similarity import resolve_similarity

logger = logging.getLogger(__name__)

PUNCTUATION = list(string.punctuation)
ST_MODEL_TYPE = "MultiVectorEncoder"


@dataclass
class ModuleSpec:
    """One pipeline step: ``kind`` in {dense, mask, normalize, token_pooling}, its config and where its
    weights are."""

    kind: str
    config: dict
    folder: Path | None = None
    weights_file: Path | None = None  # Stanford: projection stored in the backbone's weights file


@dataclass
class ModelSpec:
    """Everything needed to build a MultiVectorEncoder, whatever layout it came from."""

    root: Path
    transformer: dict  # query_length, document_length, query_expansion
    steps: list[ModuleSpec] = field(default_factory=list)
    prompts: dict = field(default_factory=dict)
    prefix_tokens: list[str] = field(default_factory=list)
    layout: str = "sentence-transformers-6"
    similarity: str = "maxsim"  # or "meanmaxsim"


def read_layout(root: Path) -> ModelSpec:
    """Detect the layout of the model folder ``root`` and translate it into a ModelSpec."""
    root = Path(root)
    if not root.is_dir():
        raise ModelLoadError(f"model folder {root} does not exist.")
    from maxsim.models.pages.layout import page_family

    if page_family(root):
        raise ModelLoadError(f"{root} is a page-retrieval model (text queries, page images): load it with "
                             "maxsim.models.pages.PageEncoder or maxsim.models.loading.load_model.")
    if (root / "modules.json").exists():
        st_config = read_json(root / "config_sentence_transformers.json") \
            if (root / "config_sentence_transformers.json").exists() else {}
        if st_config.get("model_type") == "ColBERT":
            return _read_pylate(root, st_config)
        return _read_sentence_transformers(root, st_config)
    config = read_json(root / "config.json")
    if "HF_ColBERT" in (config.get("architectures") or []):
        return _read_stanford(root)
    logger.warning("%s is a bare Hugging Face encoder: adding a randomly initialised Dense %s -> 128. "
                   "Train the model before use.", root, config.get("hidden_size"))
    return ModelSpec(root, {}, [ModuleSpec("dense", {"in_features": config["hidden_size"], "out_features": 128}),
                                ModuleSpec("mask", {"skiplist_words": []}),
                                ModuleSpec("normalize", {})], layout="huggingface")


def module_entries(root: Path) -> list[tuple[str, Path]]:
    """(class reference, folder) for every modules.json entry; paths may not leave ``root``."""
    entries = read_json(root / "modules.json")
    if not isinstance(entries, list):
        raise ModelLoadError(f"{root / 'modules.json'} must hold a list of modules.")
    resolved_root = root.resolve()
    out = []
    for entry in sorted(entries, key=lambda e: e.get("idx", 0)):
        rel = entry.get("path", "")
        folder = (root / rel).resolve()
        if Path(rel).is_absolute() or (folder != resolved_root and resolved_root not in folder.parents):
            raise ModelLoadError(f"{root / 'modules.json'}: module path {rel!r} escapes the model folder; refused.")
        out.append((str(entry.get("type", "")), folder))
    return out


def module_kind(class_ref: str) -> str:
    name = class_ref.rsplit(".", 1)[-1]
    kinds = {"Transformer": "transformer", "Dense": "dense", "MultiVectorMask": "mask", "Normalize": "normalize",
             "Pooling": "pooling", "HierarchicalTokenPooling": "token_pooling"}
    if name not in kinds:
        raise ModelLoadError(f"module type {class_ref!r} is not supported; maxsim reads Transformer, Dense, "
                             "MultiVectorMask, Normalize and HierarchicalTokenPooling modules.")
    return kinds[name]


def _transformer_config(sbert: dict) -> dict:
    """sentence_bert_config.json (ST 6 dict or flat pre-release keys) -> Transformer kwargs."""
    config = {"query_length": sbert.get("query_length"), "document_length": sbert.get("document_length")}
    if "query_expansion" in sbert:
        config["query_expansion"] = sbert["query_expansion"]
    elif "do_query_expansion" in sbert or "attend_to_expansion_tokens" in sbert:
        config["query_expansion"] = _flat_expansion(sbert)
    if config["document_length"] is None and sbert.get("max_seq_length"):
        config["document_length"] = sbert["max_seq_length"]
    return config


def _flat_expansion(flat: dict) -> dict | None:
    """The flat PyLate / pre-release keys -> the query_expansion dict (fixed, pad to query_length)."""
    if flat.get("do_query_expansion", True) is False:
        return None
    attend = flat.get("attend_to_expansion_tokens", flat.get("attend_to_mask_tokens", False))
    return {"strategy": "fixed", "attend": bool(attend), "token": None,
            "length": flat.get("query_length") or flat.get("query_maxlen") or 32}


def checked_similarity(name, source: Path) -> str:
    try:
        return resolve_similarity(name, str(source))
    except InvalidInputError as exc:
        raise ModelLoadError(str(exc)) from None


def _read_sentence_transformers(root: Path, st_config: dict) -> ModelSpec:
    spec = ModelSpec(root, {}, prompts=dict(st_config.get("prompts") or {}),
                     similarity=checked_similarity(st_config.get("similarity_fn_name"),
                                            root / "config_sentence_transformers.json"))
    for class_ref, folder in module_entries(root):
        kind = module_kind(class_ref)
        if kind == "transformer":
            if folder != root.resolve():
                raise ModelLoadError(f"{root / 'modules.json'}: the Transformer must live at the folder root.")
            sbert_path = root / "sentence_bert_config.json"
            sbert = read_json(sbert_path) if sbert_path.exists() else {}
            spec.transformer = _transformer_config(sbert)
            if "do_query_expansion" in sbert:
                spec.layout = "card-pre-release"
        elif kind == "pooling":
            logger.warning("%s has a Pooling module (a single-vector model): maxsim keeps the token vectors "
                           "before pooling.", root)
        else:
            spec.steps.append(ModuleSpec(kind, module_config(folder), folder))
    return spec


def module_config(folder: Path) -> dict:
    return read_json(folder / "config.json") if (folder / "config.json").exists() else {}


def _read_pylate(root: Path, st_config: dict) -> ModelSpec:
    spec = _read_sentence_transformers(root, st_config)
    spec.layout = "pylate"
    prompts = dict(st_config.get("prompts") or {})
    for key, prompt_key in (("query_prefix", "query"), ("document_prefix", "document")):
        prefix = st_config.get(key) or ""
        if prefix:
            spec.prefix_tokens.append(prefix)
        prompts[prompt_key] = prefix + (prompts.get(prompt_key) or "")
    spec.prompts = prompts
    spec.transformer = {"query_length": None, "document_length": st_config.get("document_length"),
                        "query_expansion": _flat_expansion(st_config)}
    if not any(s.kind == "mask" for s in spec.steps):
        skiplist = st_config.get("skiplist_words")
        spec.steps.append(ModuleSpec("mask", {"skiplist_words": PUNCTUATION if skiplist is None else skiplist}))
    if not any(s.kind == "normalize" for s in spec.steps):
        spec.steps.append(ModuleSpec("normalize", {}))
    return spec


def _read_stanford(root: Path) -> ModelSpec:
    meta_path = root / "artifact.metadata"
    meta = read_json(meta_path) if meta_path.exists() else {}
    if not meta:
        logger.warning("%s has no artifact.metadata: using Stanford ColBERT defaults.", root)
    markers = {"query": (meta.get("query_token_id") or "[unused0]") + " ",
               "document": (meta.get("doc_token_id") or "[unused1]") + " "}
    weights = next((root / n for n in (WEIGHTS_NAME, *PICKLE_WEIGHTS_NAMES) if (root / n).exists()), None)
    if weights is None:
        raise ModelLoadError(f"no weights in {root}: expected {WEIGHTS_NAME} or pytorch_model.bin.")
    skiplist = PUNCTUATION if meta.get("mask_punctuation", True) else []
    return ModelSpec(
        root,
        {"query_length": None, "document_length": meta.get("doc_maxlen", 180),
         "query_expansion": _flat_expansion({"attend_to_mask_tokens": meta.get("attend_to_mask_tokens", False),
                                             "query_maxlen": meta.get("query_maxlen", 32)})},
        [ModuleSpec("dense", {}, root, weights), ModuleSpec("mask", {"skiplist_words": skiplist}),
         ModuleSpec("normalize", {})],
        prompts=markers, prefix_tokens=list(markers.values()), layout="stanford",
        similarity=checked_similarity(_stanford_similarity(meta), meta_path),
    )


def _stanford_similarity(meta: dict):
    """Stanford's "cosine" is MaxSim of normalised vectors; its "l2" is another score (refused)."""
    name = meta.get("similarity", "cosine")
    return "maxsim" if name == "cosine" else name


def write_sentence_transformers(folder: Path, transformer, steps, prompts: dict, similarity: str = "maxsim") -> None:
    """Write the sentence-transformers 6 layout: backbone at the root, step i in ``{i}_{Name}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformer.save(folder)
    entries = [{"idx": 0, "name": "0", "path": "", "type": transformer.st_type}]
    for idx, module in enumerate(steps, start=1):
        rel = f"{idx}_{module.folder_name}"
        module.save(folder / rel)
        entries.append({"idx": idx, "name": str(idx), "path": rel, "type": module.st_type})
    write_json(folder / "modules.json", entries)
    write_json(folder / "config_sentence_transformers.json", {
        "__version__": {"maxsim": version("maxsim"), "transformers": version("transformers"),
                        "pytorch": version("torch")},
        "model_type": ST_MODEL_TYPE,
        "prompts": {k: v for k, v in prompts.items()},
        "default_prompt_name": None,
        "similarity_fn_name": similarity,
    })
