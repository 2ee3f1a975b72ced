"""maxsim: multi-vector (late-interaction, ColBERT-style) retrieval."""

import importlib

# Exported names -> (module, attribute), imported on first use (PEP 562), so that `import maxsim.cli`
# and `maxsim search --server` do not pay for torch and transformers.
_ERRORS = ("AlreadyExistsError", "CorruptedError", "InvalidInputError", "LimitExceededError", "LockedError",
           "MaxsimError", "ModelLoadError", "NotFoundError")
_EXPORTS = {**{name: ("maxsim.models", name) for name in ("Dense", "MultiVectorEncoder", "MultiVectorMask",
                                                            "Normalize", "Transformer")},
            "maxsim_scores": ("maxsim.scoring", "maxsim"), "maxsim_pairwise": ("maxsim.scoring", "maxsim_pairwise"),
            "rerank": ("maxsim.scoring", "rerank"), "Retriever": ("maxsim.search", "Retriever"),
            "open": ("maxsim.opener", "open_collection"), "Collection": ("maxsim.search.collection", "Collection"),
            **{name: ("maxsim.search.hits", name) for name in ("Document", "Hit", "Passage")},
            **{name: ("maxsim.errors", name) for name in _ERRORS}}

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'maxsim' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
