"""ExactIndex: every token vector stored (float16 or float32, memory-mapped), exact MaxSim.

The ground truth for the compressed indexes. Search scans the collection in chunks of
``chunk_tokens`` token vectors (bounded memory whatever the collection size), scores all queries
of the batch against each chunk with ``maxsim.scoring.maxsim`` and keeps a running top-k.
"""

from __future__ import annotations

import numpy as np
import torch

from maxsim.index.segmented import Segment, SegmentedIndex, chunk_ranges, merge_topk
from maxsim.index.storage import IndexCorruptedError
from maxsim.scoring import maxsim

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
        from maxsim.index.segmented import token_ranges
        return {"vectors": np.concatenate([np.asarray(seg.arrays["vectors"][token_ranges(seg.offsets, keep)])
                                           for seg, keep in parts])}

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        v = seg.arrays["vectors"]
        return [np.asarray(v[seg.offsets[j]: seg.offsets[j + 1]], dtype=np.float32) for j in locals_]

    @torch.inference_mode()
    def _search(self, queries, k, mask):
        best = [None] * len(queries)
        q_tensors = [torch.from_numpy(q) for q in queries]
        budget = int(self._body["params"]["chunk_tokens"])
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
                if len(sel) * 4 >= b - a:  # dense: convert the whole range once, split into views
                    block = torch.from_numpy(np.array(vectors[seg.offsets[a]: seg.offsets[b]], dtype=np.float32))
                    docs = torch.split(block, seg.doclens[a:b].tolist())
                    docs = [docs[j] for j in sel]
                else:
                    docs = [torch.from_numpy(np.array(vectors[seg.offsets[a + j]: seg.offsets[a + j + 1]],
                                                        dtype=np.float32)) for j in sel]
                scores = maxsim(q_tensors, docs)  # (Nq, len(sel))
                positions = base + a + sel
                for qi in range(len(queries)):
                    best[qi] = merge_topk(best[qi], positions, scores[qi], k)
        return [b if b is not None else (np.zeros(0, np.int64), np.zeros(0, np.float32)) for b in best]
