"""maxsim: multi-vector (late-interaction, ColBERT-style) retrieval."""

from maxsim.models import Dense, ModelLoadError, MultiVectorEncoder, MultiVectorMask, Normalize, Transformer
from maxsim.scoring import maxsim as maxsim_scores
from maxsim.scoring import maxsim_pairwise, rerank

__version__ = "0.1.0"
__all__ = ["Dense", "ModelLoadError", "MultiVectorEncoder", "MultiVectorMask", "Normalize", "Transformer",
           "maxsim_pairwise", "maxsim_scores", "rerank"]
