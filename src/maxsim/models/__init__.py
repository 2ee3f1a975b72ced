"""Models: the MultiVectorEncoder, its modules, and layout translation."""

from maxsim.models.encoder import MultiVectorEncoder
from maxsim.models.errors import ModelLoadError
from maxsim.models.modules import Dense, HierarchicalTokenPooling, MultiVectorMask, Normalize, Transformer

__all__ = ["Dense", "HierarchicalTokenPooling", "ModelLoadError", "MultiVectorEncoder", "MultiVectorMask",
           "Normalize", "Transformer"]
