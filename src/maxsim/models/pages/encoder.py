"""PageEncoder: text queries and page images -> one vector per token; load, encode, score, save."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from maxsim.errors import InvalidInputError
from maxsim.io.files import Unreadable
from maxsim.io.pages import PageRef, load_images
from maxsim.models import formats
from maxsim.models.base import LateInteractionEncoder
from maxsim.models.builder import build_step
from maxsim.models.encoder import check_texts, pad_embeddings
from maxsim.models.hub import resolve_model_folder
from maxsim.models.modules import HierarchicalTokenPooling, MultiVectorMask
from maxsim.models.pages.backbone import RetrievalBackbone
from maxsim.models.pages.defaults import PAGE_BATCH, PAGE_POOL_FACTOR  # noqa: F401 - exported here too
from maxsim.models.pages.grid import PatchGrid, patch_positions
from maxsim.models.pages.layout import read_page_layout
from maxsim.models.pooling import check_pool_factor, pool_with_assignment
from maxsim.models.precision import autocast, resolve_dtype, weights_dtype
from maxsim.scoring.similarity import resolve_similarity


@dataclass(frozen=True)
class EncodedPage:
    """One encoded page: ``vectors`` (n_vectors, dim) float32 and where they sit (``grid``)."""

    vectors: np.ndarray
    grid: PatchGrid


class PageEncoder(LateInteractionEncoder):
    """A page-retrieval model (ColPali, ColQwen2, ColModernVBert): queries are text, documents are page
    images (PIL images, image file paths or ``maxsim.io.pages.PageRef``).

    ``PageEncoder("folder-or-hub-id")`` reads the layouts of ``maxsim.models.pages.layout``.
    ``device``: "cpu", "cuda", ... (default: cuda when available). ``dtype``: "auto" (float32, or
    ``$MAXSIM_DTYPE``), "float32" (the exact reference path), "mixed" (bfloat16 autocast),
    "bfloat16" or "float16" (whole model cast); outputs are always float32. ``similarity_fn_name``:
    "maxsim" or "meanmaxsim" (default: what the checkpoint says).
    """

    modality = "image"

    def __init__(self, model_name_or_path: str | os.PathLike, *, device: str | None = None,
                 dtype: str | torch.dtype = "auto", similarity_fn_name: str | None = None, revision: str | None = None,
                 token: str | None = None, cache_folder: str | None = None, local_files_only: bool = False,
                 trust_remote_code: bool = False):
        super().__init__()
        folder = resolve_model_folder(model_name_or_path, revision, token, cache_folder, local_files_only)
        spec = read_page_layout(folder)
        self.backbone = RetrievalBackbone.from_pretrained(spec.root, spec.family, spec.query_length,
                                                          trust_remote_code, spec.layout)
        self.family, self.layout, self.prompts = spec.family, spec.layout, {k: v for k, v in spec.prompts.items() if v}
        self.pooling = next((HierarchicalTokenPooling.from_config(s.config) for s in spec.steps
                             if s.kind == "token_pooling"), None)
        self.steps = torch.nn.ModuleList(build_step(s, self.backbone.dim) for s in spec.steps
                                         if s.kind != "token_pooling")
        for step in self.steps:
            if isinstance(step, MultiVectorMask):
                step.bind_tokenizer(self.tokenizer)
        self.similarity_fn_name = resolve_similarity(similarity_fn_name or spec.similarity, "similarity_fn_name")
        self.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.set_dtype(dtype)
        self.eval()

    # -- properties ----------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    @property
    def processor(self):
        return self.backbone.processor

    @property
    def backbone_dim(self) -> int:
        return self.backbone.dim

    def set_dtype(self, dtype: str | torch.dtype) -> None:
        """Choose the encoding precision; ``self.precision`` is the resolved name."""
        self.precision = resolve_dtype(dtype, self.device)
        self.to(weights_dtype(self.precision))

    # -- encoding --------------------------------------------------------------------------
    def forward(self, features: dict, task: str | None = None) -> dict:
        """Model inputs -> ``token_embeddings`` (B, T, dim) and the scoring ``attention_mask`` (B, T) bool."""
        features = self.backbone(features, task)
        for step in self.steps:
            features = step(features, task)
        features["attention_mask"] = features["attention_mask"].bool()
        return features

    def encode_query(self, texts, batch_size: int = 32, show_progress_bar: bool | None = None,
                     convert_to_tensor: bool = False, pad: bool = False):
        """Query texts -> list of float32 arrays (n_tokens_i, dim) (one array for one string);
        ``convert_to_tensor``/``pad`` as ``MultiVectorEncoder.encode``."""
        single = isinstance(texts, str)
        texts = [texts] if single else check_texts(texts)
        prompt = self.prompts.get("query", "")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors: list = [None] * len(texts)
        for rows in self._batches(order, batch_size, "encode query", show_progress_bar):
            out = self._run(self.backbone.prepare_queries([prompt + texts[i] for i in rows]), "query")
            for row, emb, mask in zip(rows, out["token_embeddings"], out["attention_mask"]):
                vectors[row] = self._pool(emb[mask].float(), "query", 1)[0]
        vectors = self._output(vectors, convert_to_tensor, pad)
        return vectors[0] if single and not pad else vectors

    def query_tokens(self, text: str) -> tuple[list[str], np.ndarray]:
        """One query -> its scored tokens (prefix, text, augmentation tokens) and their vectors
        (n_tokens, dim) float32, those ``encode_query([text])`` gives; tokens are "#i" when the
        checkpoint pools queries."""
        features = self.backbone.prepare_queries([self.prompts.get("query", "") + check_texts([text])[0]])
        out = self._run(features, "query")
        mask = out["attention_mask"][0]
        vectors = self._pool(out["token_embeddings"][0][mask].float(), "query", 1)[0].cpu().numpy()
        tokens = self.tokenizer.convert_ids_to_tokens(features["input_ids"][0][mask.cpu()].tolist())
        return (tokens if len(tokens) == len(vectors) else [f"#{i}" for i in range(len(vectors))]), vectors

    def encode_document(self, images, batch_size: int = PAGE_BATCH, show_progress_bar: bool | None = None,
                        convert_to_tensor: bool = False, pad: bool = False, pool_factor: float = 1):
        """Pages -> list of float32 arrays (n_vectors_i, dim); see ``encode_pages``."""
        single = isinstance(images, (str, os.PathLike, PageRef)) or _is_pil(images)
        pages = self.encode_pages([images] if single else images, batch_size, show_progress_bar, pool_factor)
        vectors = self._output([p.vectors for p in pages], convert_to_tensor, pad)
        return vectors[0] if single and not pad else vectors

    def encode(self, inputs, task: str | None = "document", **kwargs):
        """``encode_query`` for task "query", else ``encode_document``."""
        return self.encode_query(inputs, **kwargs) if task == "query" else self.encode_document(inputs, **kwargs)

    @torch.inference_mode()
    def encode_pages(self, images, batch_size: int = PAGE_BATCH, show_progress_bar: bool | None = None,
                     pool_factor: float = 1) -> list[EncodedPage]:
        """Encode pages (PIL images, image paths or ``PageRef``; files are read one batch at a time) in
        batches of similar size -> one ``EncodedPage`` each: float32 vectors and their patch grid.
        ``pool_factor`` > 1 merges each page's vectors into about n / pool_factor
        (``maxsim.models.pooling``, no protected token), after any pooling the checkpoint declares."""
        check_pool_factor(pool_factor)
        sources = [_source(item, i) for i, item in enumerate(images)]
        order = np.argsort([-_pixels(s) for s in sources], kind="stable")
        pages: list = [None] * len(sources)
        for rows in self._batches(order, batch_size, "encode pages", show_progress_bar):
            batch = [sources[i] for i in rows]
            refs = [i for i, s in enumerate(batch) if isinstance(s, PageRef)]
            for i, image in zip(refs, load_images([batch[i] for i in refs])):
                batch[i] = image
            features = self.backbone.prepare_images(batch)
            out = self._run(features, "document")
            ids = features["input_ids"].cpu().numpy()
            for j, row in enumerate(rows):
                pages[row] = self._page(out, ids, features, j, pool_factor)
        return pages

    def _page(self, out: dict, ids: np.ndarray, features: dict, j: int, pool_factor: float) -> EncodedPage:
        mask = out["attention_mask"][j]
        scored = mask.cpu().numpy()
        positions = patch_positions(self.family, self.processor, ids[j], features, j)
        grid = PatchGrid.from_positions(positions, scored, ids[j] == self.backbone.image_token_id)
        vectors, assignment = self._pool(out["token_embeddings"][j][mask].float(), "document", pool_factor)
        return EncodedPage(vectors.cpu().numpy(), grid.pooled(assignment))

    def _pool(self, x: torch.Tensor, task: str, pool_factor: float) -> tuple[torch.Tensor, np.ndarray]:
        """The checkpoint's pooling (when it applies to ``task``), then ``pool_factor`` (no protected
        token) -> (vectors, the output row of each input vector)."""
        stages = [(pool_factor, 0, True)] if pool_factor > 1 else []
        if self.pooling is not None and task in self.pooling.tasks:
            pooling = self.pooling
            stages.insert(0, (pooling.pool_factor, pooling.num_protected_tokens, pooling.normalize_embeddings))
        assignment = np.arange(len(x))
        for factor, protected, normalize in stages:
            x, step = pool_with_assignment(x, factor, protected, normalize)
            assignment = step[assignment]
        return x, assignment

    def _run(self, features: dict, task: str) -> dict:
        features = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in features.items()}
        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.forward(features, task)

    def _batches(self, order: np.ndarray, batch_size: int, desc: str, show: bool | None):
        if batch_size <= 0:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}.")
        starts = range(0, len(order), batch_size)
        show = len(starts) > 8 and sys.stderr.isatty() if show is None else show
        for start in tqdm(starts, desc=desc, disable=not show):
            yield order[start: start + batch_size].tolist()

    def _output(self, vectors: list, convert_to_tensor: bool, pad: bool):
        """float32 numpy arrays, tensors on the model's device, or ``pad_embeddings``' pair."""
        vectors = [v.cpu().numpy() if torch.is_tensor(v) else v for v in vectors]
        if pad:
            return pad_embeddings(vectors, self.dim)
        return [torch.from_numpy(v).to(self.device) for v in vectors] if convert_to_tensor else vectors

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        """Write the sentence-transformers 6 layout (float32), which sentence-transformers 6 loads."""
        dtype = next(self.parameters()).dtype
        self.float()
        try:
            steps = [*self.steps, *([self.pooling] if self.pooling is not None else [])]
            formats.write_sentence_transformers(Path(folder), self.backbone, steps, self.prompts,
                                                self.similarity_fn_name)
        finally:
            self.to(dtype)

    def __repr__(self) -> str:
        lines = [f"  (0): {type(self.backbone.auto_model).__name__}(family={self.family!r}, dim={self.dim})"]
        steps = [*self.steps, *([self.pooling] if self.pooling is not None else [])]
        lines += [f"  ({i}): {step!r}" for i, step in enumerate(steps, start=1)]
        return "PageEncoder(\n" + "\n".join(lines) + "\n)"


def _source(item, index: int):
    """A PIL image or PageRef as is; a path -> PageRef (header read now); anything else refused."""
    if isinstance(item, PageRef) or _is_pil(item):
        return item
    if isinstance(item, (str, os.PathLike)):
        try:
            return PageRef.of_image(item)
        except Unreadable as error:
            raise InvalidInputError(f"images[{index}] = {str(item)!r}: {error.reason} ({error.detail}); a page model "
                                    "encodes page images (PIL images or image files; PDF pages: "
                                    "maxsim.io.read_pages) as documents.") from None
    raise InvalidInputError(f"images[{index}] is {type(item).__name__}: pass PIL images, image file paths or "
                            "maxsim.io.pages.PageRef.")


def _is_pil(item) -> bool:
    from PIL import Image

    return isinstance(item, Image.Image)


def _pixels(source) -> int:
    width, height = source.size
    return int(width) * int(height)
