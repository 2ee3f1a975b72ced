"""maxsim: multi-vector (late-interaction, ColBERT-style) retrieval."""

from maxsim.lazy import lazy_exports

# Exported names -> (module, attribute), imported on first use (PEP 562), so that `import maxsim.cli`
# and `maxsim search --server` do not pay for torch and transformers.
_ERRORS = ("AlreadyExistsError", "CorruptedError", "InvalidInputError", "LimitExceededError", "LockedError",
           "MaxsimError", "ModelLoadError", "NotFoundError")
_EXPORTS = {**{name: ("maxsim.models", name) for name in ("Dense", "MultiVectorEncoder", "MultiVectorMask",
                                                            "Normalize", "Transformer")},
            "maxsim_scores": ("maxsim.scoring", "maxsim"), "maxsim_pairwise": ("maxsim.scoring", "maxsim_pairwise"),
            "rerank": ("maxsim.search.rerank", "rerank"), "Retriever": ("maxsim.search", "Retriever"),
            "open": ("maxsim.opener", "open_collection"), "Collection": ("maxsim.search.collection", "Collection"),
            **{name: ("maxsim.search.hits", name) for name in ("Document", "Hit", "Passage")},
            **{name: ("maxsim.errors", name) for name in _ERRORS}}

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
