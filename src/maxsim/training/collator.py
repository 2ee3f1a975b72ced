"""Collator: training rows -> model features, through the exact preprocessing inference uses."""

from __future__ import annotations

import torch

from maxsim.errors import InvalidInputError


class Collator:
    """Rows ``{"query", "documents" (N), ["scores" (N)]}`` -> a batch for the losses::

        {"query": model.preprocess(queries, "query"),              # B rows
         "document": model.preprocess(documents, "document"),      # B*N rows, query-major
         "scores": (B, N) float32}                                  # when rows carry teacher scores

    ``model.preprocess`` is the call ``encode_query`` / ``encode_document`` make: prompts, per-task
    lengths and query expansion are applied here; the skiplist is applied by the model's forward.
    """

    def __init__(self, model):
        self.model = model

    def __call__(self, rows: list[dict]) -> dict:
        widths = {len(r["documents"]) for r in rows}
        if len(widths) != 1:
            raise InvalidInputError(f"a batch mixes rows with {sorted(widths)} documents; load the rows with "
                             "documents_per_query=N so that every row has N.")
        batch = {"query": self.model.preprocess([r["query"] for r in rows], "query"),
                 "document": self.model.preprocess([d for r in rows for d in r["documents"]], "document")}
        if all("scores" in r for r in rows):
            batch["scores"] = torch.tensor([r["scores"] for r in rows], dtype=torch.float32)
        return batch
