"""Where a page's vectors sit on the page: the patch grid of each model family, before and after pooling.

A page model turns a page image into a sequence of tokens: image-patch tokens (one per cell of a
grid laid over the resized page, row-major from the top-left) among prompt and special tokens. The
grid of one page is read from the processor's outputs for that page:

- ColPali: ``image_seq_length`` patch tokens, a square grid over the page resized to a square;
- ColQwen2: ``image_grid_thw`` = (1, h, w) patches merged ``merge_size`` x ``merge_size`` into one
  token each: an (h / m, w / m) grid over the page resized to multiples of the patch size;
- ColModernVBert (Idefics3 image splitting): ``rows`` x ``cols`` crops of ``image_seq_len`` tokens
  (a k x k grid each), raster order, then one global view of the whole page (k x k tokens): the grid
  is the crops put together, (rows * k, cols * k); the global view's vectors are patches but no cell
  (a page too small to split has only the global view, which is then the grid).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from maxsim.errors import InvalidInputError

_TAG = re.compile(r"<row_(\d+)_col_(\d+)>")


@dataclass(frozen=True)
class PatchGrid:
    """The patch layout of one encoded page.

    ``cells`` (rows, cols) int32: for each grid cell, row-major from the page's top-left corner, the
    index of the page vector that holds that patch (after pooling: the pooled vector its patch was
    merged into); -1 for a patch that was not kept. ``patches`` (n_vectors,) bool: which of the page's
    vectors come from image patches (the others: prompt and special tokens).
    """

    cells: np.ndarray
    patches: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.cells.shape[0])

    @property
    def cols(self) -> int:
        return int(self.cells.shape[1])

    @classmethod
    def from_positions(cls, positions: np.ndarray, scored: np.ndarray, is_patch: np.ndarray) -> PatchGrid:
        """``positions`` (rows, cols): token position of each cell; ``scored`` (T,) bool: which tokens
        became vectors; ``is_patch`` (T,) bool: which tokens are image patches."""
        vector_of = np.cumsum(scored) - 1
        cells = np.where(scored[positions], vector_of[positions], -1).astype(np.int32)
        return cls(cells, is_patch[scored].copy())

    def pooled(self, assignment: np.ndarray) -> PatchGrid:
        """The grid after pooling; ``assignment`` (n_vectors,): the pooled vector each vector went into.
        A pooled vector is a patch when any vector merged into it is one."""
        assignment = np.asarray(assignment, dtype=np.int64)
        patches = np.zeros(int(assignment.max(initial=-1)) + 1, dtype=bool)
        patches[assignment[self.patches]] = True
        cells = np.where(self.cells >= 0, assignment[np.maximum(self.cells, 0)], -1).astype(np.int32)
        return PatchGrid(cells, patches)

    def heatmap(self, similarities) -> np.ndarray:
        """(n_query_tokens, n_vectors) similarities of query tokens with this page's vectors ->
        (n_query_tokens, rows, cols) float32, NaN where a cell's patch was not kept."""
        similarities = np.asarray(similarities, dtype=np.float32)
        if similarities.ndim != 2 or similarities.shape[1] != len(self.patches):
            raise InvalidInputError(f"similarities must have shape (n_query_tokens, {len(self.patches)}), "
                                    f"got {similarities.shape}.")
        maps = similarities[:, np.maximum(self.cells, 0)]
        maps[:, self.cells < 0] = np.nan
        return maps

    def to_dict(self) -> dict:
        """JSON-ready: ``{"rows", "cols", "cells": row-major list, "patches": indices, "vectors": count}``."""
        return {"rows": self.rows, "cols": self.cols, "cells": self.cells.ravel().tolist(),
                "patches": np.flatnonzero(self.patches).tolist(), "vectors": len(self.patches)}

    @classmethod
    def from_dict(cls, data: dict) -> PatchGrid:
        cells = np.asarray(data["cells"], dtype=np.int32).reshape(data["rows"], data["cols"])
        patches = np.zeros(data["vectors"], dtype=bool)
        patches[np.asarray(data["patches"], dtype=np.int64)] = True
        return cls(cells, patches)


def patch_positions(family: str, processor, input_ids: np.ndarray, features: dict, row: int) -> np.ndarray:
    """(rows, cols) int64 token positions of the patch cells of page ``row`` of a processed batch."""
    image = np.flatnonzero(input_ids == processor.image_token_id)
    if family == "colpali":
        return _square(image, "ColPali")
    if family == "colqwen2":
        _, height, width = (int(v) for v in features["image_grid_thw"][row])
        merge = int(processor.image_processor.merge_size)
        return image.reshape(height // merge, width // merge)
    return _tiles(image, input_ids, processor)


def _square(positions: np.ndarray, name: str) -> np.ndarray:
    side = math.isqrt(len(positions))
    if side * side != len(positions) or side == 0:
        raise InvalidInputError(f"{name}: {len(positions)} image tokens do not form a square grid.")
    return positions.reshape(side, side)


def _tiles(positions: np.ndarray, input_ids: np.ndarray, processor) -> np.ndarray:
    """Idefics3 image splitting: the crops (their ``<row_i_col_j>`` tags give the layout) assembled."""
    per_view = int(processor.image_seq_len)
    side = math.isqrt(per_view)
    views = len(positions) // per_view
    if views <= 1:
        return _square(positions, "ColModernVBert")
    tags = set(processor.row_col_ids)
    names = processor.tokenizer.convert_ids_to_tokens([t for t in input_ids.tolist() if t in tags])
    found = [tuple(int(n) for n in _TAG.fullmatch(name).groups()) for name in names]
    rows, cols = max((r for r, _ in found), default=0), max((c for _, c in found), default=0)
    if rows * cols != views - 1:
        raise InvalidInputError(f"ColModernVBert: {views - 1} image crops do not form the {rows} x {cols} layout "
                                "their tags give.")
    crops = positions[: rows * cols * per_view].reshape(rows, cols, side, side)
    return crops.transpose(0, 2, 1, 3).reshape(rows * side, cols * side)
