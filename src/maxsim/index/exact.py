"""ExactIndex: every token vector stored (float16 or float32, memory-mapped), exact MaxSim.

The ground truth for the compressed indexes. Search scans the collection in cache-sized blocks
of documents (bounded memory whatever the collection size), scoring the queries of a batch
against each block at once (``maxsim.index.packed``: one GEMM + a segment max, the same MaxSim as
``maxsim.scoring.maxsim`` without padding).

Where the CPU multiplies bfloat16 fast (``maxsim.index.packed.scan_dtype``: AVX512-BF16, AMX),
the scan runs on a bfloat16 copy of the vectors kept in memory (built on the first search of a
segment, the size of the float16 files, whose resident pages are then given back) and every
document whose approximate score comes within twice the scan's error allowance (``SCAN_ERROR``,
~6x the largest error measured) of the k-th best is re-scored exactly, in float32, from the stored
vectors: scores are float32 MaxSim and the ranking equals a float32 scan's unless a rounding error
exceeds that allowance. Elsewhere blocks are converted to float32 one at a time (a block-sized
buffer, never a copy of the index). Blocks and query batches are padded to a few shapes
(``maxsim.index.packed.padded_rows``): memory stays flat whatever batches a service meets.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from maxsim.errors import CorruptedError
from maxsim.index.packed import (
    BLOCK_ROWS,
    SCAN_ERROR,
    as_tensor,
    maxsim_packed,
    maxsim_scan,
    merge_topk,
    padded_copy,
    padded_queries,
    scan_block,
    scan_dtype,
    token_ranges,
    top_window,
    window_ranges,
)
from maxsim.index.params import ExactParams
from maxsim.index.segment import Segment
from maxsim.index.segmented import SegmentedIndex
from maxsim.memory import release_map

SCAN_BLOCK_ELEMENTS = 1 << 21  # similarities per block: 8,192 document vectors x 256 query vectors
MAX_GROUP_COLUMNS = 2048  # query vectors scored together
_CACHE_LOCK = threading.Lock()
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
            _give_back(seg)
        return {"vectors": merged}

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        v = seg.arrays["vectors"]
        return [np.asarray(v[seg.offsets[j]: seg.offsets[j + 1]], dtype=np.float32) for j in locals_]

    @torch.inference_mode()
    def _search(self, queries, k, mask):
        """Approximate scan of query groups (at most MAX_GROUP_COLUMNS vectors), then an exact
        re-score of every document within the scan's error of the k-th best."""
        dtype = scan_dtype()
        out = []
        for group in _query_groups(queries):
            qs = [queries[j] for j in group]
            cands = self._scan(qs, k, mask, dtype)
            out.extend(self._rescore(q, docs, k) if SCAN_ERROR[dtype] else merge_topk(None, docs, scores, k)
                       for q, (docs, scores) in zip(qs, cands))
        return out

    def _scan(self, qs, k, mask, dtype):
        """Per query the (global positions, approximate scores) that may be in its top ``k``."""
        q = padded_queries(torch.from_numpy(np.concatenate(qs)).to(dtype))
        widths = [len(x) for x in qs]
        q_norms = np.array([np.linalg.norm(x, axis=1).sum() for x in qs], dtype=np.float64)
        columns = 1 << (q.shape[0] - 1).bit_length()  # one block size per power of two: few matrix shapes
        budget = max(1, min(self.params.chunk_tokens, BLOCK_ROWS, SCAN_BLOCK_ELEMENTS // columns))
        found = [([], []) for _ in qs]
        for si, seg in enumerate(self._segments):
            base = int(self._bases[si])
            seg_mask = mask[base: base + seg.n_docs]
            if not seg_mask.any():
                continue
            scores, max_norm = self._scan_segment(seg, q, widths, seg_mask, budget, dtype)
            live = np.nonzero(seg_mask)[0]
            for row, (docs, vals) in enumerate(found):
                d, v = top_window(live + base, scores[row, live], k, 2 * SCAN_ERROR[dtype] * max_norm * q_norms[row])
                docs.append(d)
                vals.append(v)
        return [(np.concatenate(d), np.concatenate(v)) if d else (np.zeros(0, np.int64), np.zeros(0, np.float32))
                for d, v in found]

    def _scan_segment(self, seg, q, widths, seg_mask, budget, dtype):
        """(n_queries, n_docs) approximate scores of one segment (masked-out ones undefined), and
        the largest token norm of the segment (what the scan error scales with)."""
        vectors, max_norm = self._scan_vectors(seg, dtype)
        scores = np.zeros((len(widths), seg.n_docs), dtype=np.float32)
        for a, b in window_ranges(seg.doclens, budget):
            sel = np.nonzero(seg_mask[a:b])[0]
            if not len(sel):
                continue
            if len(sel) * 4 >= b - a:  # dense: score the whole range
                block = scan_block(vectors, int(seg.offsets[a]), int(seg.offsets[b]), dtype, budget)
                scores[:, a:b] = maxsim_scan(q, widths, block, seg.doclens[a:b])
            else:
                block = padded_copy(vectors[token_ranges(seg.offsets, a + sel)], dtype)
                scores[:, a + sel] = maxsim_scan(q, widths, block, seg.doclens[a + sel])
        return scores, max_norm

    def _scan_vectors(self, seg, dtype):
        """The vectors the scan reads: the stored ones (float32 scan) or the segment's cached
        bfloat16 copy, built on first use; and the largest token norm (0 when not needed)."""
        if not SCAN_ERROR[dtype]:
            return seg.arrays["vectors"], 0.0
        with _CACHE_LOCK:
            if "scan" not in seg.arrays:
                v = seg.arrays["vectors"]
                copy = torch.empty((len(v), v.shape[1]), dtype=dtype)
                max_norm = 0.0
                for s in range(0, len(v), 1 << 16):
                    part = as_tensor(v[s: s + (1 << 16)], torch.float32)
                    copy[s: s + len(part)] = part
                    max_norm = max(max_norm, float(torch.linalg.vector_norm(part, dim=1).max()))
                seg.arrays["scan"], seg.arrays["scan_max_norm"] = copy, max_norm
                _give_back(seg)  # the scan reads the copy from now on
        return seg.arrays["scan"], seg.arrays["scan_max_norm"]

    def _rescore(self, q: np.ndarray, cand: np.ndarray, k: int):
        """Exact float32 MaxSim of ``q`` with the candidates (global positions) -> top ``k``."""
        exact = np.zeros(len(cand), dtype=np.float32)
        seg_idx = np.searchsorted(self._bases, cand, side="right") - 1
        for si in np.unique(seg_idx):
            sel = np.nonzero(seg_idx == si)[0]
            seg, local = self._segments[si], cand[sel] - self._bases[si]
            lengths = seg.doclens[local]
            for a, b in window_ranges(lengths, BLOCK_ROWS):
                block = seg.arrays["vectors"][token_ranges(seg.offsets, local[a:b])]
                exact[sel[a:b]] = maxsim_packed([q], block, lengths[a:b])[0]
            if "scan" in seg.arrays:  # read for this re-score only: the scan has its copy
                _give_back(seg)
        return merge_topk(None, cand, exact, k)


def _give_back(seg: Segment) -> None:
    """The resident pages of the segment's float16 file back to the system (read again on use)."""
    vectors = seg.arrays["vectors"]
    release_map(getattr(vectors, "raw", vectors))  # a CheckedArray's map, or a plain memmap


def _query_groups(queries: list[np.ndarray]) -> list[list[int]]:
    """Consecutive query indices, each group at most MAX_GROUP_COLUMNS vectors (a longer query alone)."""
    groups, cur, cols = [], [], 0
    for qi, q in enumerate(queries):
        if cur and cols + len(q) > MAX_GROUP_COLUMNS:
            groups.append(cur)
            cur, cols = [], 0
        cur.append(qi)
        cols += len(q)
    groups.append(cur)
    return groups
