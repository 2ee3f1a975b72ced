"""PlaidIndex: centroid + residual compression and PLAID's staged search, ranked from the codes.

Storage (per segment): ``codes`` (centroid id of each token, uint16 when there are at most 65,536
centroids) and ``residuals`` (each token's residual to its centroid coded one byte per group of
dimensions, ``maxsim.index.residual``). Shared: the ``ResidualCodec`` (``maxsim.index.codec``:
centroids and the residual quantizer). 128 dims at nbits 2: 2 + 32 bytes per token. Optional per
segment (``rescore="float16"``): ``vectors``, a float16 copy of every token (2 * dim bytes per
token, memory-mapped), read for the final candidates only. The inverted file is derived from the
codes when a segment is loaded (``maxsim.index.ivf``).

Search of one query Q (Lq x dim), after PLAID (Santhanam et al., 2022):
1. centroid scores S = C Q^T (n_centroids x Lq);
2. first stage (``first_stage``, default the inverted file, ``maxsim.index.ivf``): candidates
   from the inverted lists of the ``n_ivf_probe`` best centroids of each query vector, scored with
   centroid pruning; the best ``stage2_keep`` are kept;
3. approximate score without pruning (sum_i max over all tokens t of d of S[c_t, i]); keep the
   best ``n_full_scores``;
4. rank those by MaxSim scored from their codes (``maxsim.index.lut``: S plus per-query tables of
   the residual codebooks, no decompression) — or, with the float16 copy, exact MaxSim on it.
A call's queries share step 1 (one product); their steps 2-4 run side by side (``maxsim.index.parallel``).

Defaults chosen from the collection (``maxsim.index.defaults``): see docs/index.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from maxsim.errors import CorruptedError, InvalidInputError
from maxsim.index.centroids import outgrown, unit_norm
from maxsim.index.codec import ResidualCodec
from maxsim.index.defaults import resolve_search_params, stage2_keep
from maxsim.index.ivf import inverted_lists, ivf_candidates, top
from maxsim.index.lut import maxsim_codes, score_table, warm_up
from maxsim.index.packed import maxsim_documents, segment_max_sum
from maxsim.index.packed_numpy import merge_topk, token_ranges
from maxsim.index.parallel import map_queries
from maxsim.index.params import PlaidParams, check_search_settings
from maxsim.index.segment import Segment, write_segment
from maxsim.index.segmented import SegmentedIndex
from maxsim.index.storage import FileWriter

FIRST_STAGES = {"ivf": ivf_candidates}  # PlaidParams.first_stage -> candidates(index, s, mask, settings)


class PlaidIndex(SegmentedIndex):
    """Compressed multi-vector index with PLAID search. See the module docstring. ``codec``: the
    committed ``ResidualCodec`` (None before the first add)."""

    kind = "plaid"
    params_class = PlaidParams
    segment_arrays = ("codes", "residuals", "vectors")
    tier_of = {"codes": "codes", "residuals": "residuals", "vectors": "copy"}

    @classmethod
    def with_codec(cls, body: dict, folder, codec: ResidualCodec) -> dict:
        """``body`` (``new_body``'s) adopting the trained ``codec``: its files are written into
        ``folder``; the index compresses with it and never retrains (indexes sharing one codec stay
        compatible). ``PlaidIndex.create(folder, dim, codec=codec)`` and a retriever's ``create``
        use it."""
        writer = FileWriter(Path(folder))
        codec.save(writer, body, shared=True)
        writer.sync()
        return {**body, "files": dict(writer.written)}

    @property
    def shares_codec(self) -> bool:
        """Whether the codec was adopted from elsewhere (never retrained)."""
        return bool(self._body["state"].get("shared_codec"))

    def adopt_codec(self, codec: ResidualCodec) -> bool:
        """An empty index without a codec adopts ``codec`` (one commit); True if it did, False if
        it already uses a shared codec with these centroids; else InvalidInputError."""
        with self._writing():
            if self.shares_codec and np.array_equal(self.codec.centroids, codec.centroids):
                return False
            if self._body.get("shared_files") or self._body["segments"]:
                raise InvalidInputError(f"{self.folder}: only an empty index without a codec can adopt one.")
            body, writer = self._new_body(), FileWriter(self.folder)
            codec.save(writer, body, shared=True)
            self._commit(body, writer)
            return True

    @classmethod
    def train_codec(cls, vectors: np.ndarray, n_tokens_total: int, **params) -> ResidualCodec:
        """The codec the first add of an index of ``n_tokens_total`` tokens would train on
        ``vectors`` (n, dim) float32 (``params``: fields of ``PlaidParams``); hand it to other
        indexes with ``create(..., codec=)`` (``ResidualCodec.save_file`` / ``load_file`` carry it)."""
        return ResidualCodec.train(vectors, n_tokens_total, PlaidParams.from_dict(params), unit_norm(vectors))

    def tier_bytes(self) -> dict[str, int]:
        """Bytes per tier: on disk ``codes``, ``residuals``, ``centroids`` (centroids and codebooks),
        ``ids`` (ids, metadata, lengths, tombstones), ``copy`` (float16 vectors); in memory only,
        ``inverted_file`` (derived from the codes when a segment is loaded)."""
        out = {"codes": 0, "residuals": 0, "centroids": 0, "ids": 0, "copy": 0, **super().tier_bytes()}
        out["centroids"] = sum(self._body["files"][f]["bytes"] for f in (self._body.get("shared_files") or {}).values())
        out["inverted_file"] = sum(seg.arrays["ivf_offsets"].nbytes + seg.arrays["ivf_docs"].nbytes
                                   for seg in self._segments)
        return out

    @property
    def bases(self) -> np.ndarray:
        """Global position of each segment's first document."""
        return self._bases[:-1]

    # ------------------------------------------------------------------ loading
    def _load_shared(self, body: dict) -> None:
        self.codec = ResidualCodec.load(self.folder, body)  # None before the first add
        if self.codec is not None:
            warm_up(self.codec.quantizer.codebook.shape)

    def _check_segment(self, seg: Segment, body: dict) -> None:
        a, files = seg.arrays, seg.entry["files"]
        n_c, dim = body["state"]["n_centroids"], body["dim"]

        def bad(name, why):
            raise CorruptedError(f"{self.folder / files[name]}: {why}")

        if a["codes"].shape != (seg.n_tokens,):
            bad("codes", f"{a['codes'].shape[0]} codes for {seg.n_tokens} tokens.")
        if a["residuals"].shape != (seg.n_tokens, self.codec.width) or a["residuals"].dtype != np.uint8:
            bad("residuals", f"shape {a['residuals'].shape}, expected ({seg.n_tokens}, {self.codec.width}) uint8.")
        codes = np.asarray(a["codes"])
        if seg.n_tokens and int(codes.max()) >= n_c:  # codes index the centroids: range-checked
            bad("codes", f"centroid id out of range (>= {n_c}).")
        if "vectors" in a and (a["vectors"].shape != (seg.n_tokens, dim) or a["vectors"].dtype != np.float16):
            bad("vectors",
                f"shape {a['vectors'].shape} {a['vectors'].dtype}, expected ({seg.n_tokens}, {dim}) float16.")
        a["ivf_offsets"], a["ivf_docs"] = inverted_lists(codes, seg.doclens, n_c)

    # ------------------------------------------------------------------ compression
    def _segment_arrays_from(self, codes, packed, n_c, vectors=None):
        """The arrays of a segment; ``vectors`` (float32 or float16) joins them as the float16
        re-scoring copy when the index keeps one (``rescore="float16"``)."""
        out = {"codes": codes.astype(np.uint16 if n_c <= 1 << 16 else np.int32), "residuals": packed}
        if self.params.rescore and vectors is not None:
            out["vectors"] = torch.from_numpy(np.ascontiguousarray(vectors)).to(torch.float16).numpy()
        return out

    def _stored_vectors(self, seg: Segment, tok: np.ndarray) -> np.ndarray:
        """float32 vectors of the token positions ``tok``: the float16 copy where the segment has
        one, else decompressed."""
        if "vectors" in seg.arrays:
            return np.asarray(seg.arrays["vectors"][tok], dtype=np.float32)
        return self.codec.decompress(seg.arrays["codes"][tok], seg.arrays["residuals"][tok])

    def _max_abs_value(self):
        return 65504.0 if self.params.rescore == "float16" else None

    def _prepare_add(self, body, writer, embeddings, doclens):
        state, p = body["state"], self.params
        n_new = int(doclens.sum())
        x = np.concatenate(embeddings, dtype=np.float32) if n_new else np.empty((0, body["dim"]), np.float32)
        normalized_batch = unit_norm(x)
        if not body.get("shared_files"):
            codec = self._retrain(body, writer, x, normalized_batch)
            codes, packed, _ = codec.compress(x)
            return self._segment_arrays_from(codes, packed, len(codec.centroids), x)
        shared = state.get("shared_codec", False)
        if self.codec.normalized and not normalized_batch and shared:
            raise InvalidInputError("these vectors are not unit-norm but the shared codec was trained on unit-norm "
                                    "ones: normalize them, or train a codec on raw vectors.")
        total = state["n_tokens_at_training"] + state["added_tokens"] + n_new
        grown = p.n_centroids is None and outgrown(state["n_centroids"], total)
        codes, packed, sse = self.codec.compress(x)
        added_tokens = state["added_tokens"] + n_new
        drift = (state["added_sse"] + sse) / max(added_tokens, 1) > p.drift_bound * state["train_mse"] \
            and added_tokens >= 0.05 * state["n_tokens_at_training"]
        lost_norm = self.codec.normalized and not normalized_batch
        if shared or not (grown or drift or lost_norm):  # a shared codec is never retrained
            state["added_tokens"], state["added_sse"] = added_tokens, state["added_sse"] + sse
            return self._segment_arrays_from(codes, packed, state["n_centroids"], x)
        codec = self._retrain(body, writer, x, normalized_batch and self.codec.normalized)
        codes, packed, _ = codec.compress(x)
        return self._segment_arrays_from(codes, packed, len(codec.centroids), x)

    def _retrain(self, body, writer, new_x: np.ndarray, normalized: bool) -> ResidualCodec:
        """Train centroids and residual codebooks on the stored (decompressed) vectors plus
        ``new_x``, then recompress every stored segment under new file names (one atomic commit
        with the add)."""
        old_parts = []
        for entry in body["segments"]:
            seg = self._segment_for_entry(body, entry, writer)
            keep = np.nonzero(~seg.dead)[0]
            old_parts.append((seg, keep, self._stored_vectors(seg, token_ranges(seg.offsets, keep))))
        old = [v for _, _, v in old_parts]
        total = len(new_x) + sum(len(v) for v in old)
        codec = ResidualCodec.train(np.concatenate(old + [new_x]) if old else new_x, total, self.params, normalized)
        codec.save(writer, body)
        new_segments = []  # the stored documents recompressed (tombstoned ones are dropped on the way)
        for seg, keep, vectors in old_parts:
            if len(keep):
                codes, packed, _ = codec.compress(vectors)
                _, ids, meta, doclens = seg.live()
                arrays = self._segment_arrays_from(codes, packed, len(codec.centroids), vectors)
                new_segments.append(write_segment(writer, ids, meta, doclens, arrays))
        body["segments"] = new_segments
        return codec

    def _merge_arrays(self, body, parts, doclens):
        codes = np.concatenate([np.asarray(seg.arrays["codes"][token_ranges(seg.offsets, keep)], np.int64)
                                for seg, keep in parts])
        packed = np.concatenate([seg.arrays["residuals"][token_ranges(seg.offsets, keep)] for seg, keep in parts])
        vectors = np.concatenate([self._stored_vectors(seg, token_ranges(seg.offsets, keep)) for seg, keep in parts]) \
            if all("vectors" in seg.arrays for seg, _ in parts) else None
        return self._segment_arrays_from(codes, packed, body["state"]["n_centroids"], vectors)

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        a = seg.arrays
        return [self.codec.decompress(a["codes"][seg.offsets[j]: seg.offsets[j + 1]],
                                      a["residuals"][seg.offsets[j]: seg.offsets[j + 1]]) for j in locals_]

    def compression_error(self) -> float:
        """Mean squared residual norm per token at the last training (the drift reference)."""
        return self.codec.train_mse if self.codec is not None else float("nan")

    # ------------------------------------------------------------------ search
    def search(self, query_embeddings, k: int = 10, subset=None, *, n_ivf_probe: int | None = None,
               centroid_score_threshold: float | None = None, n_full_scores: int | None = None):
        """PLAID search; the three settings default to the index's values, else to the collection-size
        rule (``resolve_search_params``). ``n_ivf_probe=n_centroids, centroid_score_threshold=-inf,
        n_full_scores >= len(index)`` makes it exhaustive (MaxSim from the codes of every document)."""
        given = {"n_ivf_probe": n_ivf_probe, "n_full_scores": n_full_scores,
                 "centroid_score_threshold": centroid_score_threshold}
        check_search_settings(given)
        return super().search(query_embeddings, k, subset, **given)

    @torch.inference_mode()
    def _search(self, queries, k, mask, **given):
        sp = resolve_search_params(len(self), k, self.params.search_settings(**given), bool(self.params.rescore))
        sp["n_full_scores"] = max(int(sp["n_full_scores"]), k)
        sp["keep"] = stage2_keep(sp["n_full_scores"], len(self))
        # few documents allowed (a small collection or subset): the inverted file could only lose some
        rank_whole = int(mask.sum()) <= 4 * sp["n_full_scores"]
        # (sum Lq, K) in torch: a numpy (OpenBLAS) product here would spin its own threads against torch's
        scores_all = torch.from_numpy(np.concatenate(queries)) @ torch.from_numpy(self.codec.centroids).T
        starts = np.cumsum([0, *(len(q) for q in queries)])

        def one(i: int):  # stages 2-4 of query i; a batch's queries run side by side (map_queries)
            s = np.ascontiguousarray(scores_all[starts[i]: starts[i + 1]].numpy().T)  # (K, Lq): rows by centroid
            cand = np.nonzero(mask)[0] if rank_whole else FIRST_STAGES[self.params.first_stage](self, s, mask, sp)
            return self._rank(queries[i], s, cand, k, sp["n_full_scores"])

        return map_queries(one, range(len(queries)))

    def _rank(self, q, s, cand, k, n_full):
        """Stages 3-4 for the candidates (global positions) of one query -> its top ``k``."""
        if len(cand) > n_full:  # 3. centroid scores of all the candidates' tokens
            cand = cand[top(self._centroid_scores(cand, s), n_full, cand)]
        final, table = np.zeros(len(cand), dtype=np.float32), None
        for seg, local, sel in self._per_segment(cand):  # 4. MaxSim on the float16 copy, or from the codes
            if self.params.rescore and "vectors" in seg.arrays:
                final[sel] = maxsim_documents([q], seg.arrays["vectors"], seg.offsets, local)[0]
                continue
            table = score_table(self.codec.quantizer.codebook, q, s) if table is None else table
            final[sel] = maxsim_codes(table, seg.arrays["codes"], seg.arrays["residuals"], seg.offsets, local)
        return merge_topk(None, cand, final, k)

    def _per_segment(self, cand: np.ndarray):
        """Yield (segment, local positions, slice of cand) for sorted or unsorted global positions."""
        seg_idx = np.searchsorted(self._bases, cand, side="right") - 1
        for si in np.unique(seg_idx):
            sel = np.nonzero(seg_idx == si)[0]
            yield self._segments[si], cand[sel] - self._bases[si], sel

    def _centroid_scores(self, cand: np.ndarray, s: np.ndarray) -> np.ndarray:
        """sum_i max_{t in d} s[code_t, i] for each candidate d (0 for a document without tokens)."""
        out = np.zeros(len(cand), dtype=np.float32)
        for seg, local, sel in self._per_segment(cand):
            lens = seg.doclens[local]
            nz = lens > 0
            if nz.any():
                tok = token_ranges(seg.offsets, local[nz])
                vals = torch.from_numpy(s[np.asarray(seg.arrays["codes"][tok], dtype=np.int64)])  # (n_tok, Lq)
                out[sel[nz]] = segment_max_sum(vals, lens[nz])
        return out
