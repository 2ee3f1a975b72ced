"""High-level search: the ``Collection`` interface and its types (``Hit``, ``Passage``,
``Document``), ``Retriever`` (model + index + documents, one versioned folder) and hybrid BM25 +
MaxSim fusion. Exports are imported on first use, so ``maxsim.search.filters`` (used by the
command line) does not load torch."""

import importlib

_EXPORTS = {"Retriever": "maxsim.search.retriever", "explain_alignment": "maxsim.search.explain",
            "Collection": "maxsim.search.collection", "SearchOptions": "maxsim.search.options",
            "PRF": "maxsim.search.prf", **{name: "maxsim.search.hits" for name in ("Document", "Hit", "Passage")},
            **{name: "maxsim.search.fusion"
               for name in ("convex_fusion", "fuse", "reciprocal_rank_fusion", "score_fusion")}}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'maxsim.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
