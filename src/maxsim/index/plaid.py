"""PlaidIndex: centroid + residual compression (ColBERTv2) and PLAID's staged search.

Storage (per segment): ``codes`` (centroid id of each token, uint16 when there are at most 65,536
centroids) and ``residuals`` (each token's residual to its centroid, every dimension quantized to
``nbits`` bits with shared bucket cutoffs and packed 8/nbits values per byte). Shared: the
``ResidualCodec`` (``maxsim.index.codec``: centroids, float16, and the bucket cutoffs / weights).
128 dims at nbits=2: 2 + 32 bytes per token.
Optional per segment: ``vectors``, a float16 copy of every token (2 * dim bytes per token, on disk
and memory-mapped; stage 5 reads it for its few hundred candidates only), which makes the final
ranking exact: the compressed tier then only has to find the candidates. The
inverted file (for each centroid the documents with a token there) is derived from the codes when
a segment is loaded (a sort of the codes) and kept in memory: it is not stored, which saves
~1-2 bytes per token on disk and cannot go stale.

Search of one query Q (Lq x dim), after PLAID (Santhanam et al., 2022):
1. centroid scores S = C Q^T (n_centroids x Lq);
2. candidates: documents in the inverted lists of the ``n_ivf_probe`` best centroids of each
   query token;
3. approximate score with centroid pruning, computed from the inverted file alone:
   sum_i max(0, max over the document's centroids c that are probed or have
   max_i S[c, i] >= centroid_score_threshold of S[c, i]); keep the best 4 * n_full_scores;
4. approximate score without pruning (sum_i max over all tokens t of d of S[c_t, i]); keep the
   best ``n_full_scores``;
5. rank those documents by MaxSim (``maxsim.index.packed``, the same MaxSim as
   ``maxsim.scoring.maxsim``) on their float16 copy (``rescore="float16"``, the default: exact
   scores, read from a memory-mapped file for these documents only), or on decompressed vectors
   (centroid + bucket weights of the residual codes, renormalized when the collection is unit-norm)
   in an index without the copy (``rescore=None``, or one written before the copy existed).

Defaults chosen from the collection (``resolve_search_params``): see docs/index.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from maxsim.errors import CorruptedError, InvalidInputError
from maxsim.index.checks import check_search_settings
from maxsim.index.codec import ResidualCodec, auto_n_centroids, unit_norm
from maxsim.index.packed import maxsim_packed, merge_topk, segment_max_sum, token_ranges
from maxsim.index.segment import Segment, write_segment
from maxsim.index.segmented import SegmentedIndex
from maxsim.index.storage import load_array

STAGE2_FACTOR = 4  # stage 2 keeps STAGE2_FACTOR * n_full_scores candidates for stage 4 (see stage2_keep)
SEARCH_KEYS = ("n_ivf_probe", "centroid_score_threshold", "n_full_scores")



def resolve_search_params(n_docs: int, k: int, params: dict, rescore: bool = False) -> dict:
    """Defaults from the collection size ``n_docs`` and ``k`` (explicit values win), after
    ColBERT's PLAID defaults for k <= 10 (1 cell, threshold 0.5, 64 documents decompressed),
    widened with the collection: n_ivf_probe 2 up to 50,000 documents, else 4;
    centroid_score_threshold 0.45; n_full_scores (documents given a full MaxSim at stage 5):
    max(1.5 k, 64) when the index keeps its float16 copy (``rescore``: that MaxSim is exact, so the
    centroid-score ranking only has to bring the top k into the candidates), else max(4 k, 64) up
    to 20,000 documents and max(4 k, 128) above; never more than max(k, n_docs / 4), so a small
    collection is never scored in full. Stage 2 keeps ``stage2_keep`` documents."""
    full = max(k + k // 2, 64) if rescore else max(4 * k, 64 if n_docs <= 20_000 else 128)
    auto = {
        "n_ivf_probe": 2 if n_docs <= 50_000 else 4,
        "centroid_score_threshold": 0.45,
        "n_full_scores": min(full, max(k, n_docs // 4)),
    }
    return {key: auto[key] if params.get(key) is None else params[key] for key in SEARCH_KEYS}


def stage2_keep(n_full: int, n_docs: int) -> int:
    """Candidates stage 2 hands to stage 4: STAGE2_FACTOR * n_full, but in a small collection no more
    than max(2 * n_full, n_docs / 8), so stage 4 does not score a third of it from centroids
    (Cranfield at k=100: 300 of 1,400 documents instead of 600, 0.82x exact's time instead of 0.91x,
    recall 1.000)."""
    return min(STAGE2_FACTOR * n_full, max(2 * n_full, n_docs // 8))


class PlaidIndex(SegmentedIndex):
    """Compressed multi-vector index with PLAID search. See the module docstring. ``codec``: the
    committed ``ResidualCodec`` (None before the first add)."""

    kind = "plaid"
    default_params = {"nbits": 4, "n_centroids": None, "kmeans_niters": 4, "max_points_per_centroid": 32,
                      "n_ivf_probe": None, "centroid_score_threshold": None, "n_full_scores": None,
                      "drift_bound": 1.5, "seed": 0, "codec": None, "rescore": "float16"}
    segment_arrays = ("codes", "residuals")

    @classmethod
    def _check_params(cls, dim: int, params: dict) -> None:
        if params["nbits"] not in (1, 2, 4):
            raise InvalidInputError(f"nbits must be 1, 2 or 4, got {params['nbits']!r}.")
        if dim * params["nbits"] % 8:
            raise InvalidInputError(f"dim * nbits must be a multiple of 8 (dim={dim}, nbits={params['nbits']}).")
        if params["n_centroids"] is not None and int(params["n_centroids"]) < 1:
            raise InvalidInputError("n_centroids must be positive.")
        if int(params["kmeans_niters"]) < 1:
            raise InvalidInputError("kmeans_niters must be at least 1.")
        check_search_settings(params)
        if float(params["drift_bound"]) <= 1.0:
            raise InvalidInputError("drift_bound must be greater than 1.")
        if params.get("rescore") not in (None, "float16"):
            raise InvalidInputError(f"rescore must be 'float16' (keep a float16 copy to re-rank with) or None, "
                             f"got {params['rescore']!r}.")

    # ------------------------------------------------------------------ shared state
    def _load_shared(self, body: dict) -> None:
        self.codec = ResidualCodec.load(self.folder, body)  # None before the first add

    def _check_segment(self, seg: Segment, body: dict) -> None:
        a, files = seg.arrays, seg.entry["files"]
        n_c = body["state"]["n_centroids"]
        width = body["dim"] * body["params"]["nbits"] // 8

        def bad(name, why):
            raise CorruptedError(f"{self.folder / files[name]}: {why}")

        if a["codes"].shape != (seg.n_tokens,):
            bad("codes", f"{a['codes'].shape[0]} codes for {seg.n_tokens} tokens.")
        if a["residuals"].shape != (seg.n_tokens, width) or a["residuals"].dtype != np.uint8:
            bad("residuals", f"shape {a['residuals'].shape}, expected ({seg.n_tokens}, {width}) uint8.")
        # codes index the centroids: range-check them (cheap: 2 bytes per token)
        if seg.n_tokens and int(np.max(a["codes"])) >= n_c:
            bad("codes", f"centroid id out of range (>= {n_c}).")
        if files.get("vectors") and (a.setdefault("vectors", load_array(self.folder, files["vectors"])).shape
                                     != (seg.n_tokens, body["dim"]) or a["vectors"].dtype != np.float16):
            bad("vectors", f"shape {a['vectors'].shape} {a['vectors'].dtype}, expected ({seg.n_tokens}, "
                           f"{body['dim']}) float16.")
        # the inverted file is derived from the codes when a segment is loaded (not stored)
        a["ivf_offsets"], a["ivf_docs"] = self._ivf(np.asarray(a["codes"]), seg.doclens, n_c, seg.n_docs)

    # ------------------------------------------------------------------ compression
    @classmethod
    def train_codec(cls, vectors: np.ndarray, n_tokens_total: int, **params) -> dict[str, np.ndarray]:
        """Centroids and buckets trained on ``vectors`` (n, dim) float32 as the first add of an index
        of ``n_tokens_total`` tokens would train them. Save the dict with ``np.savez``; an index
        created with ``codec=<that .npz>`` adopts it at its first add and never retrains, so shards
        sharing one codec stay compatible (see docs/scale.md)."""
        p = {**cls.default_params, **params}
        return ResidualCodec.train(vectors, n_tokens_total, p, unit_norm(vectors)).arrays()

    def _ivf(self, codes: np.ndarray, doclens: np.ndarray, n_c: int, n_docs: int):
        """The inverted lists: offsets (n_c + 1,) into docs (int32), each centroid's documents in order."""
        doc_of_token = np.repeat(np.arange(n_docs, dtype=np.int32), doclens)
        order = np.argsort(codes, kind="stable")  # by centroid, then token (= document) order
        cells, docs = codes[order], doc_of_token[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (cells[1:] != cells[:-1]) | (docs[1:] != docs[:-1])
        offsets = np.zeros(n_c + 1, dtype=np.int64)
        np.cumsum(np.bincount(cells[first], minlength=n_c), out=offsets[1:])
        return offsets, docs[first]

    def _segment_arrays_from(self, codes, packed, n_c, vectors=None):
        """The arrays of a segment; ``vectors`` (float32 or float16) joins them as the float16
        re-scoring copy when the index keeps one (``rescore="float16"``)."""
        out = {"codes": codes.astype(np.uint16 if n_c <= 1 << 16 else np.int32), "residuals": packed}
        if self._body["params"].get("rescore") and vectors is not None:
            out["vectors"] = torch.from_numpy(np.ascontiguousarray(vectors)).to(torch.float16).numpy()
        return out

    def _stored_vectors(self, seg: Segment, tok: np.ndarray) -> np.ndarray:
        """float32 vectors of the token positions ``tok``: the float16 copy where the segment has
        one, else decompressed."""
        if "vectors" not in seg.arrays and seg.entry["files"].get("vectors"):
            seg.arrays["vectors"] = load_array(self.folder, seg.entry["files"]["vectors"])
        if "vectors" in seg.arrays:
            return np.asarray(seg.arrays["vectors"][tok], dtype=np.float32)
        return self.codec.decompress(np.asarray(seg.arrays["codes"][tok], np.int64),
                                     np.asarray(seg.arrays["residuals"][tok]))

    def _search_vectors(self, seg: Segment, tok: np.ndarray):
        """Stage 5's vectors of the token positions ``tok``: a torch gather from the memory-mapped
        float16 copy (vectorised, no numpy float16 casts), else decompressed."""
        if "vectors" not in seg.arrays:
            return self._stored_vectors(seg, tok)
        if "vectors_t" not in seg.arrays:
            with warnings.catch_warnings():  # read-only map: torch only reads it
                warnings.simplefilter("ignore", UserWarning)
                seg.arrays["vectors_t"] = torch.from_numpy(seg.arrays["vectors"])
        return seg.arrays["vectors_t"].index_select(0, torch.from_numpy(tok))

    def _max_abs_value(self):
        return 65504.0 if self._body["params"].get("rescore") == "float16" else None

    def _prepare_add(self, body, writer, embeddings, doclens):
        state, p = body["state"], body["params"]
        n_new = int(doclens.sum())
        x = np.concatenate(embeddings, dtype=np.float32) if n_new else np.empty((0, body["dim"]), np.float32)
        normalized_batch = unit_norm(x)
        if not body.get("shared_files") and p.get("codec"):
            codec = ResidualCodec.from_file(p["codec"], p["nbits"])
            codec.save(writer, body)
        elif not body.get("shared_files"):
            codec = self._retrain(body, writer, x, normalized_batch)
        else:
            total = state["n_tokens_at_training"] + state["added_tokens"] + n_new
            grown = p["n_centroids"] is None and auto_n_centroids(total) >= 4 * state["n_centroids"]
            codes, packed, sse = self.codec.compress(x)
            added_tokens = state["added_tokens"] + n_new
            drift = (state["added_sse"] + sse) / max(added_tokens, 1) > p["drift_bound"] * state["train_mse"] \
                and added_tokens >= 0.05 * state["n_tokens_at_training"]
            lost_norm = self.codec.normalized and not normalized_batch
            if lost_norm and p.get("codec"):
                raise InvalidInputError("these vectors are not unit-norm but the shared codec was trained on "
                                        "unit-norm ones.")
            if not (grown or drift or lost_norm) or p.get("codec"):  # a shared codec is never retrained
                state["added_tokens"], state["added_sse"] = added_tokens, state["added_sse"] + sse
                return self._segment_arrays_from(codes, packed, state["n_centroids"], x)
            codec = self._retrain(body, writer, x, normalized_batch and self.codec.normalized)
        # a new codec: compress the new batch with it
        codes, packed, _ = codec.compress(x)
        return self._segment_arrays_from(codes, packed, len(codec.centroids), x)

    def _retrain(self, body, writer, new_x: np.ndarray, normalized: bool) -> ResidualCodec:
        """Train centroids and buckets on the stored (decompressed) vectors plus ``new_x``, then
        recompress every stored segment under new file names (one atomic commit with the add)."""
        old_parts = []
        if body.get("shared_files"):
            for entry in body["segments"]:
                seg = self._segment_for_entry(body, entry, writer)
                keep = np.nonzero(~seg.dead)[0]
                old_parts.append((seg, keep, self._stored_vectors(seg, token_ranges(seg.offsets, keep))))
        old = [v for _, _, v in old_parts]
        total = len(new_x) + sum(len(v) for v in old)
        codec = ResidualCodec.train(np.concatenate(old + [new_x]) if old else new_x, total, body["params"], normalized)
        codec.save(writer, body)
        # recompress the stored documents (tombstoned ones are dropped on the way)
        new_segments = []
        for seg, keep, vectors in old_parts:
            if not len(keep):
                continue
            codes, packed, _ = codec.compress(vectors)
            _, ids, meta, doclens = seg.live()
            arrays = self._segment_arrays_from(codes, packed, len(codec.centroids), vectors)
            new_segments.append(write_segment(writer, ids, meta, doclens, arrays))
        body["segments"] = new_segments
        return codec

    def _merge_arrays(self, body, parts, doclens):
        codes = np.concatenate([np.asarray(seg.arrays["codes"][token_ranges(seg.offsets, keep)], np.int64)
                                for seg, keep in parts])
        packed = np.concatenate([np.asarray(seg.arrays["residuals"][token_ranges(seg.offsets, keep)])
                                 for seg, keep in parts])
        vectors = np.concatenate([self._stored_vectors(seg, token_ranges(seg.offsets, keep)) for seg, keep in parts]) \
            if all(seg.entry["files"].get("vectors") for seg, _ in parts) else None
        return self._segment_arrays_from(codes, packed, body["state"]["n_centroids"], vectors)

    def _doc_vectors(self, seg: Segment, locals_: np.ndarray) -> list[np.ndarray]:
        out = []
        for j in locals_:
            a, b = seg.offsets[j], seg.offsets[j + 1]
            out.append(self.codec.decompress(np.asarray(seg.arrays["codes"][a:b], np.int64),
                                        np.asarray(seg.arrays["residuals"][a:b])))
        return out

    def compression_error(self) -> float:
        """Mean squared residual norm per token at the last training (the drift reference)."""
        return self.codec.train_mse if self.codec is not None else float("nan")

    # ------------------------------------------------------------------ search
    def search(self, query_embeddings, k: int = 10, subset=None, *, n_ivf_probe: int | None = None,
               centroid_score_threshold: float | None = None, n_full_scores: int | None = None):
        """PLAID search; the three settings default to the index's values, else to the collection-size
        rule (``resolve_search_params``). ``n_ivf_probe=n_centroids, centroid_score_threshold=-inf,
        n_full_scores >= len(index)`` makes it exhaustive (exact MaxSim on decompressed vectors)."""
        check_search_settings({"n_ivf_probe": n_ivf_probe, "n_full_scores": n_full_scores,
                              "centroid_score_threshold": centroid_score_threshold})
        return super().search(query_embeddings, k, subset, n_ivf_probe=n_ivf_probe,
                              centroid_score_threshold=centroid_score_threshold, n_full_scores=n_full_scores)

    @torch.inference_mode()
    def _search(self, queries, k, mask, **options):
        stored = {key: self._body["params"].get(key) for key in SEARCH_KEYS}
        given = {key: options.get(key) if options.get(key) is not None else stored[key] for key in SEARCH_KEYS}
        check_search_settings(given)
        sp = resolve_search_params(len(self), k, given, bool(self._body["params"].get("rescore")))
        n_probe = max(1, min(int(sp["n_ivf_probe"]), len(self.codec.centroids)))
        n_full = max(int(sp["n_full_scores"]), k)
        thr = float(sp["centroid_score_threshold"])
        subset_direct = int(mask.sum()) <= 4 * n_full and int(mask.sum()) < len(mask)
        results = []
        # (K, sum Lq) in torch: a numpy (OpenBLAS) product here would spin its own threads against torch's
        q_all = torch.from_numpy(np.ascontiguousarray(np.concatenate(queries), dtype=np.float32))
        scores_all = (torch.from_numpy(self.codec.centroids) @ q_all.T).numpy()
        start = 0
        for q in queries:
            s = np.ascontiguousarray(scores_all[:, start: start + len(q)])
            start += len(q)
            results.append(self._search_one(q, s, k, mask, n_probe, thr, n_full, subset_direct))
        return results

    def _search_one(self, q, s, k, mask, n_probe, thr, n_full, subset_direct):
        if subset_direct:  # a small subset: every member is a candidate
            cand = np.nonzero(mask)[0]
        else:
            cand = self._stage2(s, mask, n_probe, thr, n_full)
        if not len(cand):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        # 4. approximate scores from the centroids of all tokens of the best candidates
        if len(cand) > n_full:
            approx = self._centroid_scores(cand, s)
            cand = cand[_top(approx, n_full, cand)]
        # 5. MaxSim on the float16 copy (exact) or on decompressed vectors
        exact = np.zeros(len(cand), dtype=np.float32)
        for seg, local, sel in self._per_segment(cand):
            v = self._search_vectors(seg, token_ranges(seg.offsets, local))
            exact[sel] = maxsim_packed([q], v, seg.doclens[local])[0]
        return merge_topk(None, cand, exact, k)

    def _stage2(self, s, mask, n_probe, thr, n_full):
        """Candidates (docs in the inverted lists of the probed cells) scored from the inverted
        file with centroid pruning: per query token, the best score among the document's
        centroids that are probed or score >= thr (floor 0); the best 4 * n_full are kept."""
        n_c, lq = s.shape
        if n_probe >= n_c:
            probed = np.ones(n_c, dtype=bool)
        else:
            probed = np.zeros(n_c, dtype=bool)
            probed[np.argpartition(-s, n_probe - 1, axis=0)[:n_probe].ravel()] = True
        cells = np.nonzero(probed | (s.max(axis=1) >= thr))[0]
        filtered = not mask.all()
        all_cand, all_scores = [], []
        for si, seg in enumerate(self._segments):
            off, ivf_docs = seg.arrays["ivf_offsets"], seg.arrays["ivf_docs"]
            starts = np.asarray(off[cells], dtype=np.int64)
            lens = np.asarray(off[cells + 1], dtype=np.int64) - starts
            total = int(lens.sum())
            if total == 0:
                continue
            pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(total)
            docs = np.asarray(ivf_docs[pos]).astype(np.int64)
            cell_of = np.repeat(cells, lens)
            base = int(self._bases[si])
            if filtered:  # drop postings outside the subset before grouping: the work shrinks with it
                inside = mask[base + docs]
                docs, cell_of = docs[inside], cell_of[inside]
                if not len(docs):
                    continue
            # group the (document, centroid) pairs by document: one max per document and query token
            order = np.argsort(docs, kind="stable")
            docs, cell_of = docs[order], cell_of[order]
            first = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            uniq = docs[first]
            probed_doc = np.logical_or.reduceat(probed[cell_of], first)
            keep = probed_doc & mask[base + uniq]
            if not keep.any():
                continue
            maxima = np.maximum.reduceat(s[cell_of], first, axis=0)[keep]
            all_cand.append(uniq[keep] + base)
            all_scores.append(np.maximum(maxima, 0).sum(axis=1))
        if not all_cand:
            return np.zeros(0, np.int64)
        cand, scores = np.concatenate(all_cand), np.concatenate(all_scores)
        keep = stage2_keep(n_full, len(self))
        if len(cand) > keep:
            cand = cand[_top(scores, keep, cand)]
        return cand

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
            if not nz.any():
                continue
            local, sel, lens = local[nz], sel[nz], lens[nz]
            tok = token_ranges(seg.offsets, local)
            vals = torch.from_numpy(s[np.asarray(seg.arrays["codes"][tok], dtype=np.int64)])  # (n_tok, Lq)
            out[sel] = segment_max_sum(vals, lens)
        return out


def _top(scores: np.ndarray, n: int, cand: np.ndarray) -> np.ndarray:
    """Positions of the ``n`` best scores (ties: lower candidate position), unordered."""
    if len(scores) <= n:
        return np.arange(len(scores))
    return np.lexsort((cand, -scores))[:n]
