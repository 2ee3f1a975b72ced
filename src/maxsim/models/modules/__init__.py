"""Pipeline modules; each saves itself into its own numbered folder."""

from maxsim.models.modules.dense import Dense
from maxsim.models.modules.mask import MultiVectorMask
from maxsim.models.modules.normalize import Normalize
from maxsim.models.modules.pooling import HierarchicalTokenPooling
from maxsim.models.modules.transformer import Transformer

__all__ = ["Dense", "HierarchicalTokenPooling", "MultiVectorMask", "Normalize", "Transformer"]
