"""What every maxsim encoder shares: its device, the dimension of its vectors, and scoring."""

from __future__ import annotations

import numpy as np
import torch

from maxsim.models.modules import Dense
from maxsim.scoring.similarity import similarity, similarity_pairwise


class LateInteractionEncoder(torch.nn.Module):
    """Base of ``MultiVectorEncoder`` (text documents) and ``PageEncoder`` (page images). Subclasses set
    ``steps`` (the token-level modules after the backbone), ``similarity_fn_name`` and
    ``backbone_dim`` (the width of the backbone's token vectors)."""

    steps: torch.nn.ModuleList
    similarity_fn_name: str

    @property
    def backbone_dim(self) -> int:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        """Dimension of the output token vectors."""
        dims = [s.out_features for s in self.steps if isinstance(s, Dense)]
        return dims[-1] if dims else self.backbone_dim

    def similarity(self, query_embeddings, document_embeddings) -> np.ndarray:
        """Score matrix (Nq, Nd) float32 of encoded queries and documents with ``similarity_fn_name``
        (MaxSim, or MaxSim / query vector count for "meanmaxsim"); chunked, bounded memory."""
        return similarity(query_embeddings, document_embeddings, self.similarity_fn_name)

    def similarity_pairwise(self, query_embeddings, document_embeddings) -> np.ndarray:
        """Score of each (query i, document i) pair with ``similarity_fn_name`` -> (n,) float32."""
        return similarity_pairwise(query_embeddings, document_embeddings, self.similarity_fn_name)
