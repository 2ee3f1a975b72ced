"""High-level search: the ``Collection`` interface and its types (``Hit``, ``Passage``,
``Document``), ``Retriever`` (model + index + documents, one versioned folder) and hybrid BM25 +
MaxSim fusion. Exports are imported on first use, so ``maxsim.search.filters`` (used by the
command line) does not load torch."""

from maxsim.lazy import lazy_exports

_EXPORTS = {"Retriever": "maxsim.search.retriever", "explain_alignment": "maxsim.search.explain",
            "Collection": "maxsim.search.collection", "SearchOptions": "maxsim.search.options",
            "PRF": "maxsim.search.prf", **{name: "maxsim.search.hits" for name in ("Document", "Hit", "Passage")},
            **{name: "maxsim.search.fusion"
               for name in ("convex_fusion", "fuse", "reciprocal_rank_fusion", "score_fusion")}}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
