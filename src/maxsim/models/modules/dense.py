"""Token-level linear projection (e.g. 768 -> 128), identity activation."""

from __future__ import annotations

from pathlib import Path

import torch

from maxsim.errors import InvalidInputError
from maxsim.models.modules.base import Module, load_weights

IDENTITY = "torch.nn.modules.linear.Identity"


class Dense(Module):
    """Projects ``features["token_embeddings"]`` (B, T, in_features) to (B, T, out_features).

    ``use_residual`` (the card's pre-release layout) adds the input when the dims agree.
    Only the identity activation is supported: it is what every published ColBERT uses.
    """

    config_keys = ("in_features", "out_features", "bias", "activation_function", "use_residual")
    st_type = "sentence_transformers.base.modules.dense.Dense"
    folder_name = "Dense"

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 activation_function: str = IDENTITY, use_residual: bool = False):
        super().__init__()
        if activation_function not in (IDENTITY, None, "identity"):
            raise InvalidInputError(
                f"Dense activation {activation_function!r} is not supported; only {IDENTITY!r} (identity) is."
            )
        if use_residual and in_features != out_features:
            raise InvalidInputError("Dense use_residual needs in_features == out_features, "
                                    f"got {in_features} -> {out_features}.")
        self.in_features, self.out_features, self.bias = int(in_features), int(out_features), bool(bias)
        self.activation_function = IDENTITY
        self.use_residual = bool(use_residual)
        self.linear = torch.nn.Linear(self.in_features, self.out_features, bias=self.bias)

    def forward(self, features: dict, task: str | None = None) -> dict:
        x = features["token_embeddings"]
        y = self.linear(x)
        features["token_embeddings"] = y + x if self.use_residual else y
        return features

    def get_config(self) -> dict:
        config = super().get_config()
        config["module_input_name"] = "token_embeddings"
        config["module_output_name"] = "token_embeddings"
        return config

    @classmethod
    def load(cls, folder: Path, config: dict) -> Dense:
        keys = set(cls.config_keys)
        module = cls(**{k: v for k, v in config.items() if k in keys})
        module.load_linear_state(load_weights(folder), source=str(folder))
        return module

    def load_linear_state(self, state: dict, source: str) -> None:
        """Copy ``linear.weight`` (out, in) and optional ``linear.bias`` into this module."""
        state = {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
        expected = (self.out_features, self.in_features)
        weight = state.get("weight")
        if weight is None or tuple(weight.shape) != expected:
            got = None if weight is None else tuple(weight.shape)
            raise InvalidInputError(f"{source}: Dense weight has shape {got}, config says {expected}.")
        self.linear.load_state_dict(state, strict=True)
