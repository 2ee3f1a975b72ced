"""MultiVectorMask: rewrites ``attention_mask`` into the scoring mask."""

from __future__ import annotations

import logging

import torch

from maxsim.models.modules.base import Module

logger = logging.getLogger(__name__)


class MultiVectorMask(Module):
    """Turns the tokenizer's ``attention_mask`` into the mask of vectors that MaxSim scores.

    - query expansion positions (``features["expansion_positions"]``) count for queries;
    - tokens whose id is in ``skiplist_words`` are dropped for the tasks in ``skiplist_tasks``
      (default ``["document"]``; text encoded without a task counts as a document);
    - ``keep_only_token_ids``, when set, keeps only those ids on the non-query side.
    Nothing downstream special-cases it: every consumer reads ``attention_mask``.
    """

    config_keys = ("skiplist_words", "skiplist_tasks", "keep_only_token_ids")
    st_type = "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"
    folder_name = "MultiVectorMask"

    def __init__(self, skiplist_words: list[str] | None = None, skiplist_tasks: list[str] | str | None = None,
                 keep_only_token_ids: list[int] | None = None):
        super().__init__()
        self.skiplist_words = list(skiplist_words or [])
        if isinstance(skiplist_tasks, str):
            skiplist_tasks = [skiplist_tasks]
        self.skiplist_tasks = list(skiplist_tasks) if skiplist_tasks is not None else ["document"]
        self.keep_only_token_ids = list(keep_only_token_ids) if keep_only_token_ids is not None else None
        self.skiplist_ids = torch.zeros(0, dtype=torch.long)

    def bind_tokenizer(self, tokenizer) -> None:
        """Resolve ``skiplist_words`` to ids; words that are not one vocabulary token are dropped
        (mapping them to [UNK] would silently drop every unknown document token)."""
        ids, unknown = [], []
        for word in self.skiplist_words:
            token_id = tokenizer.convert_tokens_to_ids(word)
            if token_id is None or (token_id == tokenizer.unk_token_id and word != tokenizer.unk_token):
                unknown.append(word)
            else:
                ids.append(token_id)
        if unknown:
            logger.warning("skiplist words %s are not single tokens of this tokenizer; ignored.", unknown)
        self.skiplist_ids = torch.tensor(sorted(set(ids)), dtype=torch.long)

    def forward(self, features: dict, task: str | None = None) -> dict:
        input_ids = features["input_ids"]
        mask = features["attention_mask"].bool()
        if task == "query" and "expansion_positions" in features:
            mask = mask | features["expansion_positions"]
        if (task or "document") in self.skiplist_tasks and len(self.skiplist_ids):
            mask = mask & ~torch.isin(input_ids, self.skiplist_ids.to(input_ids.device))
        if task != "query" and self.keep_only_token_ids:
            keep = torch.tensor(self.keep_only_token_ids, dtype=torch.long, device=input_ids.device)
            mask = mask & torch.isin(input_ids, keep)
        features["attention_mask"] = mask
        return features
