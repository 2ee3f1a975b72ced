"""The torch scan of an ExactIndex (``maxsim.index.exact``): query groups of at most
MAX_GROUP_COLUMNS vectors against blocks of at most SCAN_BLOCK_ELEMENTS similarities, in the scan
dtype (``maxsim.index.packed.scan_dtype``). A bfloat16 or int8 scan reads a copy of each segment's
vectors in that dtype (``ScanCopy``; int8 on x86: prepacked blocks, ``maxsim.index.packed_int8``)
and re-scores in float32 every document within twice its allowance (``scan_allowance``) of the k-th
best (``ExactIndex._exact``; a batch's queries are re-scored side by side, ``maxsim.index.parallel``).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
import torch

from maxsim.index import packed_int8
from maxsim.index.exact import give_back
from maxsim.index.packed import (
    convert_into,
    maxsim_documents,
    maxsim_scan,
    padded_copy,
    padded_queries,
    quantized,
    scan_allowance,
    scan_block,
    scan_dtype,
    scratch,
)
from maxsim.index.packed_numpy import BLOCK_ROWS, merge_topk, token_ranges, top_window, window_ranges
from maxsim.index.parallel import map_queries

SCAN_BLOCK_ELEMENTS = 1 << 21  # similarities per block: 8,192 document vectors x 256 query vectors
MAX_GROUP_COLUMNS = 2048  # query vectors scored together
# rows of a block viewed in a scan copy: one query on nq-kd / Cranfield (int8), 8,192 -> 16,384 rows:
# 9.8 -> 9.1 / 22.4 -> 19.0 ms; 32,768: 9.5 / 19.5
VIEW_ROWS = 16384
# a window with under 1/GATHER of its documents selected (a filter) has them gathered and scored
# alone. A prepacked block's are read from the stored vectors (no plain int8 rows) and multiplied
# in bfloat16, per vector ~8x a packed product, so a block is gathered under 1/GATHER_PACKED per
# query (Cranfield, blocks of 8,192, one query, whole / gathered: 10 % selected 12.3 / 14.1 ms, 5 % ~12.5 / 7.1)
GATHER, GATHER_PACKED = 4, 12
_CACHE_LOCK = threading.Lock()


@dataclass
class ScanCopy:
    """A segment's vectors as a scan reads them, in ``dtype``: ``vectors`` (n_tokens, dim) (the stored
    array for a float32 scan) and ``scales`` (n_tokens, 1) for int8 (vector ~ scale * row), or int8
    ``blocks`` (``packed_int8.PackedBlock``) instead of both; the largest token norm and int8 scale
    (what the scan's error scales with)."""

    dtype: torch.dtype
    vectors: object = None
    scales: torch.Tensor | None = None
    blocks: list | None = None
    max_norm: float = 0.0
    max_scale: float = 0.0


@torch.inference_mode()
def search(index, queries: list[np.ndarray], k: int, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query its top ``k`` (global positions, float32 scores) among the ``mask``ed documents of
    ``index``: a scan, then where it is approximate an exact re-score of every document within its
    error of the k-th best."""
    dtype, out = scan_dtype(), []
    for group in _query_groups(queries):
        qs = [queries[j] for j in group]
        found = scan(index, qs, k, mask, dtype)
        if dtype == torch.float32:  # the scan was exact
            out.extend(merge_topk(None, docs, scores, k) for docs, scores in found)
            continue
        pairs = [(q, docs) for q, (docs, _) in zip(qs, found)]
        rescored = map_queries(lambda pair: index._exact([pair[0]], pair[1], maxsim_documents)[0], pairs)
        out.extend(merge_topk(None, docs, exact, k) for (_, docs), exact in zip(pairs, rescored))
    return out


def scan(index, qs: list[np.ndarray], k: int, mask: np.ndarray, dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query the (global positions, approximate scores) that may be in its top ``k``."""
    q, q_scales = _scan_queries(qs, dtype)
    q_gather = functools.cache(lambda: padded_queries(torch.from_numpy(np.concatenate(qs)).to(torch.bfloat16)))
    widths = [len(x) for x in qs]
    q_norms = [float(np.linalg.norm(x, axis=1).sum()) for x in qs]
    q_scale_sums = [0.0] * len(qs) if q_scales is None else \
        [float(s.sum()) for s in torch.split(q_scales[: sum(widths)], widths)]
    columns = 1 << (q.shape[0] - 1).bit_length()  # one block size per power of two: few matrix shapes
    copied = BLOCK_ROWS if dtype == torch.float32 else VIEW_ROWS  # a float32 block is a copy, others views
    budget = max(1, min(index.params.chunk_tokens, copied, SCAN_BLOCK_ELEMENTS // columns))
    found = [([], []) for _ in qs]
    for si, seg in enumerate(index._segments):
        base = int(index._bases[si])
        seg_mask = mask[base: base + seg.n_docs]
        if not seg_mask.any():
            continue
        copy = _scan_copy(seg, dtype)
        scores = _scan_segment(seg, copy, (q, q_scales, q_gather), widths, seg_mask, budget, dtype)
        live = np.nonzero(seg_mask)[0]
        for row, (docs, vals) in enumerate(found):
            allowance = scan_allowance(dtype, copy.max_norm, copy.max_scale, q_norms[row], q_scale_sums[row])
            if copy.blocks is not None:  # packed products, and gathered documents' scores, are bfloat16
                allowance += scan_allowance(torch.bfloat16, copy.max_norm, 0.0, q_norms[row], 0.0)
            d, v = top_window(live + base, scores[row, live], k, 2 * allowance)
            docs.append(d)
            vals.append(v)
    return [(np.concatenate(d), np.concatenate(v)) if d else (np.zeros(0, np.int64), np.zeros(0, np.float32))
            for d, v in found]


def _scan_queries(qs: list[np.ndarray], dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The query vectors of a group in the scan dtype, padded (``padded_queries``), and their int8
    scales (None for another dtype)."""
    q = torch.from_numpy(np.concatenate(qs).astype(np.float32, copy=False))
    if dtype != torch.int8:
        return padded_queries(q.to(dtype)), None
    rows, scales = quantized(padded_queries(q))
    return rows, scales[:, 0]


def _scan_segment(seg, copy: ScanCopy, queries, widths, seg_mask, budget, dtype) -> np.ndarray:
    """(n_queries, n_docs) approximate scores of one segment (masked-out ones undefined) for
    ``queries`` = (rows, int8 scales or None, () -> bfloat16 rows for the gathered documents of a
    packed copy, made on first use): windows of documents, a dense one scored whole; the selected
    documents of the sparse ones (GATHER, GATHER_PACKED) gathered into blocks of at most ``budget``
    vectors."""
    (q, q_scales, q_gather), gather = queries, GATHER
    scores, selected = np.zeros((len(widths), seg.n_docs), dtype=np.float32), []
    if copy.blocks is None:
        windows = [((a, b), None) for a, b in window_ranges(seg.doclens, budget)]
    else:  # prepacked blocks: their windows, and the query side of their products once per segment
        windows, gather = [(blk.docs, blk) for blk in copy.blocks], max(GATHER, GATHER_PACKED // len(widths))
        x, starts = packed_int8.query_rows(q), np.cumsum([0, *widths[:-1]])
        column_scales = q_scales[: sum(widths)].numpy()
    for (a, b), packed in windows:
        sel = np.nonzero(seg_mask[a:b])[0]
        if len(sel) * gather < b - a:  # sparse: the selected documents only
            selected.append(a + sel)
        elif packed is not None:
            scores[:, a:b] = packed.scores(x, column_scales, starts)
        else:
            start, stop = int(seg.offsets[a]), int(seg.offsets[b])
            block = scan_block(copy.vectors, start, stop, dtype, budget)
            rows = None if copy.scales is None else scan_block(copy.scales, start, stop, torch.float32, budget)
            scores[:, a:b] = maxsim_scan(q, widths, block, seg.doclens[a:b], None if rows is None else (rows, q_scales))
    docs = np.concatenate(selected) if selected else np.zeros(0, np.int64)
    for a, b in window_ranges(seg.doclens[docs], budget) if len(docs) else ():
        block, rows = _gathered(seg, copy, token_ranges(seg.offsets, docs[a:b]), dtype)
        scores[:, docs[a:b]] = maxsim_scan(q if copy.blocks is None else q_gather(), widths, block,
                                           seg.doclens[docs[a:b]], None if rows is None else (rows, q_scales))
    if len(docs) and copy.blocks is not None:  # read for this filter only: the scan has its copy
        give_back(seg)
    return scores


def _gathered(seg, copy: ScanCopy, positions: np.ndarray, dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The vectors at ``positions`` in the scan dtype, padded (``padded_copy``), and their int8 row
    scales (None for another dtype); when the copy is packed, the stored vectors in bfloat16."""
    if copy.blocks is not None:  # float16 -> float32 -> bfloat16: 3x faster than one conversion
        part = padded_copy(seg.arrays["vectors"][positions], torch.float32)
        return scratch(part.numel(), torch.bfloat16, "gather").view(part.shape).copy_(part), None
    block = padded_copy(copy.vectors[positions], dtype)
    return block, None if copy.scales is None else padded_copy(copy.scales[positions], torch.float32)


def _scan_copy(seg, dtype) -> ScanCopy:
    """What the scan reads of a segment: its stored vectors (float32 scan), or its copy in the scan
    dtype, built on first use (the float16 file's pages are then given back)."""
    if dtype == torch.float32:
        return ScanCopy(dtype, seg.arrays["vectors"])
    with _CACHE_LOCK:
        copy = seg.arrays.get("scan")
        if copy is None or copy.dtype != dtype:
            v = seg.arrays["vectors"]
            if dtype == torch.int8 and packed_int8.used(v.shape[1], len(v) / max(1, seg.n_docs)):
                copy = ScanCopy(dtype)
                copy.blocks, copy.max_norm, copy.max_scale = packed_int8.pack(v, seg.offsets, seg.doclens)
            else:
                copy = _build_copy(v, dtype)
            seg.arrays["scan"] = copy
            give_back(seg)  # the scan reads the copy from now on
    return copy


def _build_copy(v, dtype) -> ScanCopy:
    """``v`` (n, dim), any float dtype, as a ScanCopy in ``dtype`` (bfloat16 or int8)."""
    copy = ScanCopy(dtype, torch.empty((len(v), v.shape[1]), dtype=dtype))
    scales = torch.ones((len(v), 1)) if dtype == torch.int8 else None
    copy.max_norm = convert_into(v, copy.vectors, scales)
    if scales is not None:
        copy.scales, copy.max_scale = scales, float(scales.max()) if len(v) else 0.0
    return copy


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
