"""HierarchicalTokenPooling: the pipeline step that stores fewer, merged token vectors per document."""

from __future__ import annotations

import torch

from maxsim.errors import InvalidInputError
from maxsim.models.modules.base import Module
from maxsim.models.pooling import check_pool_factor, pool_tokens


class HierarchicalTokenPooling(Module):
    """Pools each text of the tasks in ``tasks`` (default ``["document"]``; no task counts as a
    document) with ``maxsim.models.pooling.pool_tokens``: the first ``num_protected_tokens`` scored
    vectors are kept, the others merged into ``n // pool_factor`` cluster means; then, with
    ``normalize_embeddings``, every vector is L2-normalised (also when ``pool_factor <= 1``).
    Reads and writes ``token_embeddings`` (B, T, D) and the scoring ``attention_mask`` (B, T):
    pooled rows are right-padded. Saved in the sentence-transformers 6 layout (config only);
    a saved config without ``normalize_embeddings`` means False, as sentence-transformers reads it.
    """

    config_keys = ("pool_factor", "num_protected_tokens", "normalize_embeddings", "tasks")
    st_type = "sentence_transformers.multi_vector_encoder.modules.token_pooling.HierarchicalTokenPooling"
    folder_name = "HierarchicalTokenPooling"

    def __init__(self, pool_factor: float = 1.0, num_protected_tokens: int = 1, normalize_embeddings: bool = True,
                 tasks: list[str] | str | None = None):
        super().__init__()
        check_pool_factor(pool_factor)
        if isinstance(num_protected_tokens, bool) or not isinstance(num_protected_tokens, int) \
                or num_protected_tokens < 0:
            raise InvalidInputError(f"num_protected_tokens must be an int >= 0, got {num_protected_tokens!r}.")
        self.pool_factor = pool_factor
        self.num_protected_tokens = num_protected_tokens
        self.normalize_embeddings = bool(normalize_embeddings)
        self.tasks = [tasks] if isinstance(tasks, str) else list(tasks) if tasks is not None else ["document"]

    @classmethod
    def from_config(cls, config: dict) -> HierarchicalTokenPooling:
        config = {"normalize_embeddings": False, **config}
        return cls(**{k: v for k, v in config.items() if k in cls.config_keys})

    def forward(self, features: dict, task: str | None = None) -> dict:
        if (task or "document") not in self.tasks:
            return features
        x, mask = features["token_embeddings"], features["attention_mask"].bool()
        if self.pool_factor <= 1:
            if self.normalize_embeddings:
                features["token_embeddings"] = torch.nn.functional.normalize(x.float(), dim=-1).to(x.dtype)
            return features
        rows = [pool_tokens(e[m], self.pool_factor, self.num_protected_tokens, self.normalize_embeddings)
                for e, m in zip(x, mask)]
        if not rows:
            return features
        lengths = torch.tensor([len(r) for r in rows], device=x.device)
        features["token_embeddings"] = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        features["attention_mask"] = torch.arange(int(lengths.max()), device=x.device)[None, :] < lengths[:, None]
        return features
