"""MaxSim scoring: matrix, pairwise and top-k."""

from maxsim.scoring.maxsim import maxsim, maxsim_pairwise, topk

__all__ = ["maxsim", "maxsim_pairwise", "topk"]
