"""Models: the MultiVectorEncoder, its modules, and layout translation.

Exports are imported on first use, so that ``maxsim.models.frozen`` (a one-off search) does not
load transformers."""

from maxsim.lazy import lazy_exports

_EXPORTS = {"MultiVectorEncoder": "maxsim.models.encoder",
            **{name: "maxsim.models.modules" for name in ("Dense", "HierarchicalTokenPooling", "MultiVectorMask",
                                                           "Normalize", "Transformer")}}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
