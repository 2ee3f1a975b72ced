"""Instantiate modules from a layout-independent ModelSpec."""

from __future__ import annotations

from maxsim.errors import InvalidInputError
from maxsim.models.formats import ModelSpec, ModuleSpec
from maxsim.models.modules import Dense, HierarchicalTokenPooling, MultiVectorMask, Normalize, Transformer
from maxsim.models.modules.base import load_pickle_weights, load_weights


def build_modules(spec: ModelSpec, trust_remote_code: bool = False) -> list:
    """[Transformer, *steps] for ``spec``; weights are read from the files the spec names."""
    transformer = Transformer.from_pretrained(spec.root, prefix_tokens=spec.prefix_tokens,
                                              trust_remote_code=trust_remote_code, **spec.transformer)
    modules = [transformer]
    width = transformer.hidden_size
    for step in spec.steps:
        module = build_step(step, width)
        if isinstance(module, Dense):
            width = module.out_features
        modules.append(module)
    return modules


def build_step(step: ModuleSpec, width: int):
    if step.kind == "mask":
        keys = MultiVectorMask.config_keys
        return MultiVectorMask(**{k: v for k, v in step.config.items() if k in keys})
    if step.kind == "token_pooling":
        return HierarchicalTokenPooling.from_config(step.config)
    if step.kind == "normalize":
        return Normalize(step.config.get("module_input_name", "token_embeddings"),
                         step.config.get("module_output_name"))
    if step.weights_file is not None:  # Stanford: projection inside the backbone's weights file
        path = step.weights_file
        state = load_pickle_weights(path) if path.suffix != ".safetensors" else load_weights(path.parent)
        weight = state.get("linear.weight")
        if weight is None:
            raise InvalidInputError(f"{path} has no 'linear.weight': not a Stanford ColBERT checkpoint.")
        dense = Dense(weight.shape[1], weight.shape[0])
        dense.load_linear_state({"linear.weight": weight}, source=str(path))
        return dense
    if step.folder is None:  # fresh projection for a bare backbone
        return Dense(step.config.get("in_features", width), step.config.get("out_features", 128))
    return Dense.load(step.folder, step.config)
