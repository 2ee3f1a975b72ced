"""MaxSim scoring: matrix, pairwise, top-k and rerank."""

from maxsim.scoring.maxsim import maxsim, maxsim_pairwise, topk
from maxsim.scoring.rerank import rerank

__all__ = ["maxsim", "maxsim_pairwise", "rerank", "topk"]
