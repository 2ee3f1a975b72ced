"""L2 normalisation of every token vector."""

from __future__ import annotations

import logging

import torch

from maxsim.models.modules.base import Module

logger = logging.getLogger(__name__)


class Normalize(Module):
    """``features[module_input_name]`` (B, T, D) -> unit-length rows, written to ``module_output_name``.

    A multi-vector pipeline only carries ``token_embeddings``. Checkpoints saved with the
    sentence-transformers default ``module_input_name="sentence_embedding"`` therefore normalise
    nothing in the reference library; we reproduce that exactly (and warn once at load time).
    """

    config_keys = ("module_input_name", "module_output_name")
    st_type = "sentence_transformers.base.modules.normalize.Normalize"
    folder_name = "Normalize"

    def __init__(self, module_input_name: str = "token_embeddings", module_output_name: str | None = None):
        super().__init__()
        self.module_input_name = module_input_name
        self.module_output_name = module_output_name or module_input_name
        if module_input_name != "token_embeddings":
            logger.warning(
                "Normalize reads %r, which a multi-vector model does not produce: token vectors are left "
                "unnormalised, exactly as sentence-transformers does for this checkpoint.", module_input_name
            )

    def forward(self, features: dict, task: str | None = None) -> dict:
        x = features.get(self.module_input_name)
        if x is not None:
            features[self.module_output_name] = torch.nn.functional.normalize(x, p=2, dim=-1)
        return features
