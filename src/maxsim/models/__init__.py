"""Models: the MultiVectorEncoder, its modules, and layout translation."""

from maxsim.models.encoder import MultiVectorEncoder
from maxsim.models.modules import Dense, HierarchicalTokenPooling, MultiVectorMask, Normalize, Transformer

__all__ = ["Dense", "HierarchicalTokenPooling", "MultiVectorEncoder", "MultiVectorMask",
           "Normalize", "Transformer"]
