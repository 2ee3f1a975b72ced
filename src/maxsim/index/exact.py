"""ExactIndex: every token vector stored (float16 or float32, memory-mapped), exact MaxSim.

The ground truth for the compressed indexes. Search scans the collection in cache-sized blocks
of documents (bounded memory whatever the collection size), scoring the queries of a batch
against each block at once (``maxsim.index.packed``: one GEMM + a segment max, the same MaxSim as
``maxsim.scoring.maxsim`` without padding).

Where the CPU multiplies int8 or bfloat16 fast (``maxsim.index.packed.scan_dtype``: AVX512-VNNI,
AVX512-BF16, AMX), the scan runs on a copy of the vectors in that dtype kept in memory (built on
the first search of a segment; int8: half the size of the float16 files, on x86 in prepacked blocks
(``maxsim.index.packed_int8``), bfloat16: their size; the files' resident pages are then given
back) and every document whose approximate score comes within twice the scan's error allowance
(``maxsim.index.packed.scan_allowance``, ~5x the largest error measured) of the k-th best is
re-scored exactly, in float32, from the stored vectors: scores are float32 MaxSim and the ranking
equals a float32 scan's unless a rounding error exceeds that allowance. Elsewhere blocks are
converted to float32 one at a time (a block-sized buffer, never a copy of the index). Blocks and
query batches are padded to a few shapes (``maxsim.index.packed.padded_rows``): memory stays flat
whatever batches a service meets. That scan is ``maxsim.index.exact_scan`` (torch). A process that
has not loaded torch and scans in float32 (``numpy_scan``: a one-off ``maxsim search``) scans in
numpy instead, exactly (``maxsim.index.packed_numpy.maxsim_numpy``): importing torch would cost
more than the scan.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from maxsim.errors import CorruptedError
from maxsim.index.packed_numpy import maxsim_documents_numpy, merge_topk, token_ranges
from maxsim.index.params import ExactParams
from maxsim.index.segment import Segment
from maxsim.index.segmented import SegmentedIndex
from maxsim.memory import release_map

DTYPES = {"float16": np.float16, "float32": np.float32}


class ExactIndex(SegmentedIndex):
    """Exact MaxSim over memory-mapped token vectors.

    ``ExactIndex.create(folder, dim, dtype="float16")``: the fields of ``ExactParams``; ``dtype``
    ``"float16"`` (half the disk, scores within ~1e-3 of float32) or ``"float32"``.
    """

    kind = "exact"
    params_class = ExactParams
    segment_arrays = ("vectors",)
    tier_of = {"vectors": "vectors"}

    @property
    def _dtype(self):
        return DTYPES[self.params.dtype]

    def _max_abs_value(self):
        return 65504.0 if self.params.dtype == "float16" else None

    def _check_segment(self, seg: Segment, body: dict) -> None:
        v = seg.arrays["vectors"]
        name = self.folder / seg.entry["files"]["vectors"]
        if v.shape != (seg.n_tokens, body["dim"]) or v.dtype != DTYPES[body["params"]["dtype"]]:
            raise CorruptedError(f"{name}: array {v.shape} {v.dtype} does not match the manifest "
                                      f"({seg.n_tokens} x {body['dim']} {body['params']['dtype']}).")

    def _prepare_add(self, body, writer, embeddings, doclens):
        flat = np.empty((int(doclens.sum()), self.dim), dtype=self._dtype)
        pos = 0
        for e in embeddings:
            flat[pos: pos + len(e)] = e
            pos += len(e)
        return {"vectors": flat}

    def _merge_arrays(self, body, parts, doclens):
        merged = np.concatenate([np.asarray(seg.arrays["vectors"][token_ranges(seg.offsets, keep)])
                                 for seg, keep in parts])
        for seg, _ in parts:  # read once: the merged copy is written next
            give_back(seg)
        return {"vectors": merged}

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        v = seg.arrays["vectors"]
        return [np.asarray(v[seg.offsets[j]: seg.offsets[j + 1]], dtype=np.float32) for j in locals_]

    def _search(self, queries, k, mask):
        """Approximate scan of query groups (at most MAX_GROUP_COLUMNS vectors), then an exact
        re-score of every document within the scan's error of the k-th best; without torch
        (``numpy_scan``) an exact float32 scan."""
        if numpy_scan():
            live = np.nonzero(mask)[0]
            return [merge_topk(None, live, s, k) for s in self._exact(queries, live, maxsim_documents_numpy)]
        from maxsim.index.exact_scan import search

        return search(self, queries, k, mask)

    def _exact(self, queries: list[np.ndarray], cand: np.ndarray, kernel) -> np.ndarray:
        """(n_queries, n_cand) float32 MaxSim of ``queries`` with the candidates (global positions),
        from the stored vectors by ``kernel`` (``maxsim_documents`` or ``maxsim_documents_numpy``)."""
        exact = np.zeros((len(queries), len(cand)), dtype=np.float32)
        seg_idx = np.searchsorted(self._bases, cand, side="right") - 1
        for si in np.unique(seg_idx):
            sel = np.nonzero(seg_idx == si)[0]
            seg, local = self._segments[si], cand[sel] - self._bases[si]
            exact[:, sel] = kernel(queries, seg.arrays["vectors"], seg.offsets, local)
            if "scan" in seg.arrays:  # read for this re-score only: the scan has its copy
                give_back(seg)
        return exact


def give_back(seg: Segment) -> None:
    """The resident pages of the segment's float16 file back to the system (read again on use)."""
    vectors = seg.arrays["vectors"]
    release_map(getattr(vectors, "raw", vectors))  # a CheckedArray's map, or a plain memmap


def numpy_scan() -> bool:
    """Whether exact scans run in numpy: float32 asked for (``MAXSIM_SCAN_DTYPE``) in a process that
    has not loaded torch (a one-off search of a frozen model, whose scan costs less than the import)."""
    return os.environ.get("MAXSIM_SCAN_DTYPE") == "float32" and "torch" not in sys.modules
