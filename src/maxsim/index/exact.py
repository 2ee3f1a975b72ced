"""ExactIndex: every token vector stored (float16 or float32, memory-mapped), exact MaxSim.

The ground truth for the compressed indexes. Search scans the collection in chunks of at most
``chunk_tokens`` token vectors (bounded memory whatever the collection size), scores the queries
of a batch against each chunk at once (``maxsim.index.packed``: one GEMM + a segment max, the
same MaxSim as ``maxsim.scoring.maxsim`` without padding) and keeps a running top-k.
"""

from __future__ import annotations

import numpy as np
import torch

from maxsim.index.packed import chunk_ranges, maxsim_packed, merge_topk, token_ranges
from maxsim.index.segment import Segment
from maxsim.index.segmented import SegmentedIndex
from maxsim.index.storage import IndexCorruptedError

DTYPES = {"float16": np.float16, "float32": np.float32}


class ExactIndex(SegmentedIndex):
    """Exact MaxSim over memory-mapped token vectors.

    ``ExactIndex.create(folder, dim, dtype="float16")``: ``dtype`` is ``"float16"`` (half the
    disk, scores within ~1e-3 of float32) or ``"float32"``.
    """

    kind = "exact"
    default_params = {"dtype": "float16", "chunk_tokens": 1 << 18}
    segment_arrays = ("vectors",)

    @classmethod
    def _check_params(cls, dim: int, params: dict) -> None:
        if params["dtype"] not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {params['dtype']!r}.")
        if int(params["chunk_tokens"]) <= 0:
            raise ValueError("chunk_tokens must be positive.")

    @property
    def _dtype(self):
        return DTYPES[self._body["params"]["dtype"]]

    def _max_abs_value(self):
        return 65504.0 if self._body["params"]["dtype"] == "float16" else None

    def _check_segment(self, seg: Segment, body: dict) -> None:
        v = seg.arrays["vectors"]
        name = self.folder / seg.entry["files"]["vectors"]
        if v.shape != (seg.n_tokens, body["dim"]) or v.dtype != DTYPES[body["params"]["dtype"]]:
            raise IndexCorruptedError(f"{name}: array {v.shape} {v.dtype} does not match the manifest "
                                      f"({seg.n_tokens} x {body['dim']} {body['params']['dtype']}).")

    def _prepare_add(self, body, writer, embeddings, doclens):
        flat = np.empty((int(doclens.sum()), self.dim), dtype=self._dtype)
        pos = 0
        for e in embeddings:
            flat[pos: pos + len(e)] = e
            pos += len(e)
        return {"vectors": flat}

    def _merge_arrays(self, body, parts, doclens):
        return {"vectors": np.concatenate([np.asarray(seg.arrays["vectors"][token_ranges(seg.offsets, keep)])
                                           for seg, keep in parts])}

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        v = seg.arrays["vectors"]
        return [np.asarray(v[seg.offsets[j]: seg.offsets[j + 1]], dtype=np.float32) for j in locals_]

    @torch.inference_mode()
    def _search(self, queries, k, mask):
        """Scan: query groups of at most 2,048 vectors x token chunks, one GEMM + segment max each."""
        best = [None] * len(queries)
        groups, cur = [], []
        for qi, q in enumerate(queries):
            if cur and sum(len(queries[j]) for j in cur) + len(q) > 2048:
                groups.append(cur)
                cur = []
            cur.append(qi)
        groups.append(cur)
        for group in groups:
            q_group = [queries[j] for j in group]
            n_cols = sum(len(q) for q in q_group)
            budget = max(1, min(int(self._body["params"]["chunk_tokens"]), (1 << 25) // n_cols))
            for si, seg in enumerate(self._segments):
                base = int(self._bases[si])
                seg_mask = mask[base: base + seg.n_docs]
                if not seg_mask.any():
                    continue
                vectors = seg.arrays["vectors"]
                for a, b in chunk_ranges(seg.doclens, budget):
                    sel = np.nonzero(seg_mask[a:b])[0]
                    if not len(sel):
                        continue
                    if len(sel) * 4 >= b - a:  # dense: score the whole range, keep the selected
                        block = np.array(vectors[seg.offsets[a]: seg.offsets[b]], dtype=np.float32)
                        scores = maxsim_packed(q_group, block, seg.doclens[a:b])[:, sel]
                    else:
                        tok = token_ranges(seg.offsets, a + sel)
                        block = np.array(vectors[tok], dtype=np.float32)
                        scores = maxsim_packed(q_group, block, seg.doclens[a + sel])
                    positions = base + a + sel
                    for row, qi in enumerate(group):
                        best[qi] = merge_topk(best[qi], positions, scores[row], k)
        return [b if b is not None else (np.zeros(0, np.int64), np.zeros(0, np.float32)) for b in best]
