"""Page-retrieval checkpoint layouts -> one ``PageSpec``.

Read:
- the sentence-transformers 6 layout around a transformers ``*ForRetrieval`` model: ``modules.json``
  with the Transformer at the folder root (``sentence_bert_config.json``: ``transformer_task:
  "retrieval"``, optional ``query_length``), then token steps (``MultiVectorMask``, and
  ``HierarchicalTokenPooling``, ``Normalize`` or ``Dense`` when present);
- a bare transformers ``*ForRetrieval`` folder (``config.json`` + weights + processor files), read
  as sentence-transformers 6.2 reads it: the model, then a ``MultiVectorMask`` with no skiplist;
- colpali-engine's layout (``maxsim.models.pages.colpali_engine``).
The model family comes from ``config.json``'s ``architectures``; ``PageEncoder.save`` writes the
sentence-transformers 6 layout (``formats.write_sentence_transformers``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from maxsim.errors import ModelLoadError
from maxsim.models.formats import ModuleSpec, checked_similarity, module_config, module_entries, module_kind
from maxsim.models.modules.base import read_json

logger = logging.getLogger(__name__)

FAMILIES = {"ColPaliForRetrieval": "colpali", "ColQwen2ForRetrieval": "colqwen2",
            "ColModernVBertForRetrieval": "colmodernvbert"}
ARCHITECTURES = {family: architecture for architecture, family in FAMILIES.items()}


@dataclass
class PageSpec:
    """Everything a ``PageEncoder`` is built from, whatever layout it came from."""

    root: Path
    family: str  # "colpali", "colqwen2" or "colmodernvbert"
    steps: list[ModuleSpec] = field(default_factory=lambda: [ModuleSpec("mask", {"skiplist_words": []})])
    prompts: dict = field(default_factory=dict)
    similarity: str = "maxsim"
    query_length: int | None = None
    layout: str = "transformers"


def page_family(root: Path) -> str | None:
    """The page-model family of the model folder ``root``, or None for a text model."""
    from maxsim.models.pages.colpali_engine import engine_family

    root = Path(root)
    config_path = root / "config.json"
    if not config_path.is_file():
        return engine_family(root)
    architectures = read_json(config_path).get("architectures") or []
    family = next((FAMILIES[a] for a in architectures if a in FAMILIES), None)
    if family is None and any(str(a).endswith("ForRetrieval") for a in architectures):
        raise ModelLoadError(f"{config_path}: architecture {architectures} is not a supported page model; maxsim "
                             f"reads {sorted(FAMILIES)}.")
    return family or engine_family(root)


def read_page_layout(root: Path) -> PageSpec:
    """Translate the page-model folder ``root`` into a PageSpec."""
    from maxsim.models.pages.colpali_engine import engine_family, read_engine_layout

    root = Path(root)
    family = page_family(root)
    if family is None:
        raise ModelLoadError(f"{root} is not a page-retrieval model (ColPali, ColQwen2, ColModernVBert); load "
                             "text models with MultiVectorEncoder.")
    if engine_family(root):
        return read_engine_layout(root, family)
    if not (root / "modules.json").is_file():
        return PageSpec(root, family)
    return _read_sentence_transformers(root, family)


def _read_sentence_transformers(root: Path, family: str) -> PageSpec:
    st_path = root / "config_sentence_transformers.json"
    st_config = read_json(st_path) if st_path.is_file() else {}
    spec = PageSpec(root, family, steps=[], prompts=dict(st_config.get("prompts") or {}),
                    similarity=checked_similarity(st_config.get("similarity_fn_name"), st_path),
                    layout="sentence-transformers-6")
    for class_ref, folder in module_entries(root):
        kind = module_kind(class_ref)
        if kind == "transformer":
            if folder != root.resolve():
                raise ModelLoadError(f"{root / 'modules.json'}: the Transformer must live at the folder root.")
            spec.query_length = _transformer_config(root)
        elif kind == "pooling":
            raise ModelLoadError(f"{root / 'modules.json'}: a Pooling module makes single vectors; a page model "
                                 "keeps one vector per token.")
        else:
            spec.steps.append(ModuleSpec(kind, module_config(folder), folder))
    return spec


def _transformer_config(root: Path) -> int | None:
    """``query_length`` of ``sentence_bert_config.json`` (``document_length`` does not apply to images)."""
    path = root / "sentence_bert_config.json"
    config = read_json(path) if path.is_file() else {}
    task = config.get("transformer_task", "retrieval")
    if task != "retrieval":
        raise ModelLoadError(f"{path}: transformer_task {task!r}; a *ForRetrieval model needs \"retrieval\".")
    if config.get("document_length"):
        logger.warning("%s: document_length is ignored: a page's token count is set by the image processor.", path)
    return config.get("query_length")
