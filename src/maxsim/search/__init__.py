"""High-level search: ``Retriever`` (model + index + texts/metadata) and hybrid BM25 + MaxSim fusion."""

from maxsim.search.explain import explain_alignment
from maxsim.search.fusion import fuse, reciprocal_rank_fusion, score_fusion
from maxsim.search.retriever import Retriever

__all__ = ["Retriever", "explain_alignment", "fuse", "reciprocal_rank_fusion", "score_fusion"]
