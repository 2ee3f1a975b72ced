"""MultiVectorEncoder: text -> one vector per token; load, encode, score, save."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from maxsim.errors import InvalidInputError, ModelLoadError
from maxsim.models import formats
from maxsim.models.backends import Runtime
from maxsim.models.base import LateInteractionEncoder
from maxsim.models.builder import build_modules
from maxsim.models.hub import resolve_model_folder
from maxsim.models.modules import MultiVectorMask, Transformer
from maxsim.models.precision import auto_backend, autocast, resolve_backend, resolve_dtype, weights_dtype
from maxsim.models.runtimes import check_backend
from maxsim.scoring.similarity import resolve_similarity

TASKS = ("query", "document")
logger = logging.getLogger(__name__)
_RUNTIME_LOCK = threading.Lock()  # one "auto" runtime per model, however many threads encode first


class MultiVectorEncoder(LateInteractionEncoder):
    """A late-interaction model: ``Transformer`` then token-level steps (Dense, MultiVectorMask, Normalize).

    ``MultiVectorEncoder("folder-or-hub-id")`` reads any published layout (see ``formats``);
    ``MultiVectorEncoder(modules=[transformer, ...], prompts={...})`` builds one from parts.
    ``device``: "cpu", "cuda", ... (default: cuda when available). Two independent knobs (see
    ``precision``): ``backend`` says where ``encode`` runs the backbone: "auto" (default: OpenVINO where
    it is the fast path, i.e. precision "mixed" on CPUs with AMX / AVX512-BF16 in eval mode; torch
    elsewhere and while training), "torch", or "onnx" / "openvino" (ONNX Runtime / OpenVINO on the CPU,
    inference only; exported once and cached, see ``backends``), with ``backend_options``
    {"cache_dir": ..., "num_threads": ...}. ``dtype`` is the precision within that backend: "auto"
    (default: the fastest that keeps retrieval quality: OpenVINO's bfloat16 hint where the backend can
    take it, else float32), "float32" (the exact reference path), "mixed" (bfloat16 products with float32
    accumulation: torch autocast or OpenVINO's bfloat16 hint), "bfloat16" or "float16" (whole model cast,
    torch only); outputs are always float32.
    ``similarity_fn_name``: "maxsim" or "meanmaxsim" (default: what the checkpoint says).
    """

    modality = "text"  # what documents are; page models (maxsim.models.pages) have "image"

    def __init__(self, model_name_or_path: str | os.PathLike | None = None, *, modules: list | None = None,
                 prompts: dict | None = None, device: str | None = None, dtype: str | torch.dtype = "auto",
                 similarity_fn_name: str | None = None, revision: str | None = None, token: str | None = None,
                 cache_folder: str | None = None, local_files_only: bool = False, trust_remote_code: bool = False,
                 backend: str = "auto", backend_options: dict | None = None):
        super().__init__()
        self.backend = backend = resolve_backend(backend)
        self.backend_options = check_backend(backend, backend_options)
        self.runtime: Runtime | None = None
        if backend in ("onnx", "openvino") and device not in (None, "cpu"):
            raise InvalidInputError(f"backend={backend!r} runs on the CPU only, not device={device!r}; "
                                    "use backend='torch' on an accelerator.")
        if (model_name_or_path is None) == (modules is None):
            raise InvalidInputError("pass either model_name_or_path or modules=[Transformer(...), ...], "
                                    "not both or neither.")
        self.layout, saved_similarity = "modules", "maxsim"
        if model_name_or_path is not None:
            folder = resolve_model_folder(model_name_or_path, revision, token, cache_folder, local_files_only)
            spec = formats.read_layout(folder)
            modules = build_modules(spec, trust_remote_code=trust_remote_code)
            prompts = {**spec.prompts, **(prompts or {})}
            self.layout, saved_similarity = spec.layout, spec.similarity
        if not modules or not isinstance(modules[0], Transformer):
            raise InvalidInputError("the first module must be a maxsim Transformer.")
        self.transformer: Transformer = modules[0]
        self.steps = torch.nn.ModuleList(modules[1:])
        self.prompts = {k: v for k, v in (prompts or {}).items() if v}
        self.similarity_fn_name = resolve_similarity(similarity_fn_name or saved_similarity, "similarity_fn_name")
        for step in self.steps:
            if isinstance(step, MultiVectorMask):
                step.bind_tokenizer(self.tokenizer)
        self.to(device or ("cuda" if torch.cuda.is_available() and backend in ("auto", "torch") else "cpu"))
        self.set_dtype(dtype)
        self.eval()

    @classmethod
    def default(cls, **kwargs) -> MultiVectorEncoder:
        """The embedded default: all-MiniLM-L6-v2 token vectors (384-dim), no projection, no markers,
        no query expansion, punctuation skipped on documents, L2-normalised. Fully offline."""
        from maxsim.models.default import default_modules

        return cls(modules=default_modules(), **kwargs)

    # -- properties ----------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.transformer.tokenizer

    @property
    def backbone_dim(self) -> int:
        return self.transformer.hidden_size

    def set_dtype(self, dtype: str | torch.dtype) -> None:
        """Choose the encoding precision within the backend; ``self.precision`` is the resolved name
        ("auto" never), ``self.auto_backend`` the runtime backend "auto" chose ("openvino" or None: torch).
        The torch weights stay float32 unless a torch cast is asked; an explicit backend's runtime is
        (re)built now, the one "auto" chose at the first ``encode``."""
        precision = resolve_dtype(dtype, self.device, self.backend)
        self.auto_backend = auto_backend(self.backend, precision, self.device)
        self._auto_runtime, self._auto_state = None, None
        if self.backend in ("auto", "torch"):
            self.to(weights_dtype("float32" if self.auto_backend else precision))
        else:
            self.runtime = Runtime(self.transformer.auto_model, self.backend, precision, self.backend_options)
        self.precision = precision

    def train(self, mode: bool = True) -> MultiVectorEncoder:
        if mode and self.runtime is not None:
            raise InvalidInputError(f"backend={self.backend!r} is inference only: load the model with "
                                    "backend='torch' to train it.")
        return super().train(mode)

    def _encode_runtime(self) -> Runtime | None:
        """The runtime ``encode`` runs the backbone in: an explicit backend's; the one backend="auto"
        chose, in eval mode, exported at the first encode; once the weights change (training: in-place
        updates bump tensor versions) "auto" stays on the float32 torch path (no export per
        evaluation); None: torch."""
        if self.auto_backend is None or self.training or self.device.type != "cpu":
            return self.runtime
        state = tuple((id(p), p._version, p.device) for p in self.transformer.auto_model.parameters())
        with _RUNTIME_LOCK:
            if self._auto_state is None:
                try:
                    self._auto_runtime = Runtime(self.transformer.auto_model, self.auto_backend, self.precision,
                                                 self.backend_options)
                    self._auto_state = state
                except ModelLoadError as exc:  # e.g. an unwritable export cache: the float32 path still works
                    logger.warning("backend='auto' falls back to float32 torch: %s", exc)
        if state != self._auto_state:  # trained, or the export failed
            self.auto_backend, self.precision, self._auto_runtime = None, "float32", None
        return self._auto_runtime

    # -- preprocessing and forward (shared by inference and training) -------------------
    def tokenize(self, texts, task: str | None) -> list[list[int]]:
        """Validate texts, prepend the task's prompt, tokenize -> unpadded id lists."""
        _check_task(task)
        texts = check_texts(texts)
        prompt = self.prompts.get(task, "") if task else ""
        return self.transformer.tokenize([prompt + t for t in texts], task)

    def preprocess(self, texts, task: str | None) -> dict[str, torch.Tensor]:
        """Texts -> padded features dict (``input_ids``, ``attention_mask`` (B, T), ...)."""
        return self.transformer.collate(self.tokenize(texts, task), task)

    def forward(self, features: dict, task: str | None = None) -> dict:
        """Features -> ``token_embeddings`` (B, T, dim) and scoring ``attention_mask`` (B, T) bool."""
        return self._forward(features, task, self.runtime)

    def _forward(self, features: dict, task: str | None, runtime: Runtime | None) -> dict:
        features = self.transformer(features, task) if runtime is None else runtime.forward(features)
        for step in self.steps:
            features = step(features, task)
        if features["attention_mask"].dtype != torch.bool:
            features["attention_mask"] = features["attention_mask"].bool()
        return features

    # -- encoding --------------------------------------------------------------------------
    def encode_query(self, texts, **kwargs):
        """Queries -> list of float32 arrays (n_tokens_i, dim); see ``encode`` for options."""
        return self.encode(texts, task="query", **kwargs)

    def encode_document(self, texts, **kwargs):
        """Documents -> list of float32 arrays (n_tokens_i, dim); see ``encode`` for options."""
        return self.encode(texts, task="document", **kwargs)

    @torch.inference_mode()
    def encode(self, texts, task: str | None = "document", batch_size: int = 32,
               show_progress_bar: bool | None = None, convert_to_tensor: bool = False, pad: bool = False):
        """Encode texts in length-sorted batches.

        Returns a list of float32 numpy arrays (n_tokens_i, dim) (a single array for a single
        string); ``convert_to_tensor=True`` gives torch tensors on the model's device instead;
        ``pad=True`` gives ``(embeddings (N, T_max, dim), mask (N, T_max) bool)`` with zero padding.
        """
        if batch_size <= 0:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}.")
        single = isinstance(texts, str)
        texts = [texts] if single else check_texts(texts)
        ids = self.tokenize(texts, task) if texts else []
        order = np.argsort([-len(x) for x in ids], kind="stable")
        results: list = [None] * len(ids)
        batches = range(0, len(ids), batch_size)
        if show_progress_bar is None:
            show_progress_bar = len(batches) > 8 and sys.stderr.isatty()
        device, runtime = self.device, self._encode_runtime()
        torch_precision = self.precision if runtime is None and self.auto_backend is None else "float32"
        for start in tqdm(batches, desc=f"encode {task or 'text'}", disable=not show_progress_bar):
            rows = order[start: start + batch_size]
            features = self.transformer.collate([ids[i] for i in rows], task)
            features = {k: v.to(device) for k, v in features.items()}
            with autocast(torch_precision, device):
                out = self._forward(features, task, runtime)
            mask = out["attention_mask"]
            kept = out["token_embeddings"][mask].float()
            if not convert_to_tensor:
                kept = kept.cpu().numpy()
            counts = mask.sum(1).tolist()
            for row, piece in zip(rows, _split(kept, counts)):
                results[row] = piece
        if pad:
            return pad_embeddings(results, self.dim)
        return results[0] if single else results

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        """Write the sentence-transformers 6 layout, which sentence-transformers 6 loads as well."""
        dtype = next(self.parameters()).dtype
        if dtype != torch.float32:
            self.float()
        try:
            formats.write_sentence_transformers(Path(folder), self.transformer, list(self.steps), self.prompts,
                                                self.similarity_fn_name)
        finally:
            self.to(dtype)

    def __repr__(self) -> str:
        config = {**self.transformer.get_config(), "architecture": type(self.transformer.auto_model).__name__}
        lines = [f"  (0): Transformer({config})"]
        lines += [f"  ({i}): {step!r}" for i, step in enumerate(self.steps, start=1)]
        return "MultiVectorEncoder(\n" + "\n".join(lines) + "\n)"


def _check_task(task) -> None:
    if task is not None and task not in TASKS:
        raise InvalidInputError(f"task must be 'query', 'document' or None, got {task!r}.")


def check_texts(texts) -> list[str]:
    """An iterable of str -> list; a TypeError names the first position that is not a str."""
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise InvalidInputError(f"texts must be a list of strings, got {type(texts).__name__}.")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] is {type(text).__name__}, not str: pass text only (use '' for empty).")
    return texts


def _split(kept, counts: list[int]) -> list:
    out, start = [], 0
    for n in counts:
        out.append(kept[start: start + n])
        start += n
    return out


def pad_embeddings(items: list, dim: int):
    """(N, T_max, dim) float32 zero-padded vectors and (N, T_max) bool mask, numpy or torch like ``items``."""
    width = max((len(x) for x in items), default=0)
    is_torch = bool(items) and isinstance(items[0], torch.Tensor)
    emb = np.zeros((len(items), width, dim), dtype=np.float32)
    mask = np.zeros((len(items), width), dtype=bool)
    for i, x in enumerate(items):
        emb[i, : len(x)] = x.cpu().numpy() if is_torch else x
        mask[i, : len(x)] = True
    return (torch.from_numpy(emb), torch.from_numpy(mask)) if is_torch else (emb, mask)
