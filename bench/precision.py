"""Where bfloat16 drifts: per-layer error of OpenVINO's bfloat16 hint (and torch autocast) against
float32 on real texts, and what keeping one part of the network in float32 costs and saves.

    python -P bench/precision.py [--documents 64] [--repeats 3]

The backbone of ``MultiVectorEncoder.default()`` (MiniLM-L6) runs on the first ``--documents``
Cranfield abstracts with the model's own document preprocessing. Table 1: per layer (the output of
the embeddings' LayerNorm, then of each layer's attention and FFN LayerNorm), the relative error
``||x_bf16 - x_f32|| / ||x_f32||`` over real tokens, for OpenVINO's bfloat16 hint and for torch's
bfloat16 autocast. Table 2: the token vectors the model outputs (L2-normalised, as stored), error of
each variant of the OpenVINO bfloat16 graph in which one group of operations is marked to stay in
float32 (``disable_fp16_compression`` runtime info, honoured by the CPU plugin under the bfloat16
hint): max abs difference, mean and max of 1 - cosine, and documents/s (best of ``--repeats``,
side by side in one process).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from maxsim import MultiVectorEncoder
from maxsim.cache import cache_root
from maxsim.models.backends import export
from maxsim.models.precision import cpu_flags

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # after maxsim: bench/maxsim.py must not shadow it
from common import cranfield_texts, markdown_table  # noqa: E402

KEEP = "disable_fp16_compression_0"


def roles(model) -> dict[str, list]:
    """Operations of the exported graph by role: per layer the attention projections (Q, K, V, O), the
    attention core (QK^T, softmax, attention x V), the FFN (two MatMuls and GELU), the normalisations
    with their residual adds; plus the first and the last layer whole."""
    groups: dict[str, list] = {"attention projections": [], "attention core (QK, softmax, AV)": [],
                               "FFN (MatMuls, GELU)": [], "LayerNorm + residual adds": [],
                               "first layer (all of it)": [], "last layer (all of it)": []}
    seen_mvn, layers = 0, {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        layer = (seen_mvn - 1) // 2 if seen_mvn else -1
        layers.setdefault(layer, []).append(op)
        constant = any(i.get_source_output().get_node().get_type_name() == "Constant" for i in op.inputs())
        if kind == "MVN":
            seen_mvn += 1
            groups["LayerNorm + residual adds"].append(op)
        elif kind == "MatMul" and not constant:
            groups["attention core (QK, softmax, AV)"].append(op)
        elif kind == "Softmax":
            groups["attention core (QK, softmax, AV)"].append(op)
        elif kind == "MatMul":
            groups["FFN (MatMuls, GELU)" if seen_mvn % 2 == 0 and seen_mvn else "attention projections"].append(op)
        elif kind == "Gelu":
            groups["FFN (MatMuls, GELU)"].append(op)
        elif kind == "Add" and not constant:
            groups["LayerNorm + residual adds"].append(op)
    groups["first layer (all of it)"] = layers[0]
    groups["last layer (all of it)"] = layers[max(layers)]
    return groups


def layer_outputs(model) -> list:
    """The LayerNorm outputs (the Add of the affine after each MVN), in order."""
    ops = model.get_ordered_ops()
    outputs = []
    for op in ops:
        if op.get_type_name() == "MVN":
            after = [t.get_node() for t in op.output(0).get_target_inputs()]
            node = next(n for n in after if n.get_type_name() == "Multiply")
            after = [t.get_node() for t in node.output(0).get_target_inputs()]
            node = next(n for n in after if n.get_type_name() == "Add")
            outputs.append(node.output(0))
    return outputs


def compile_model(core, path, hint: str, keep=(), extra_outputs=False):
    model = core.read_model(str(path))
    names = {op.get_friendly_name() for op in keep}
    for op in model.get_ordered_ops():
        if op.get_friendly_name() in names:
            op.get_rt_info()[KEEP] = ""
    if extra_outputs:
        model.add_outputs(layer_outputs(model))
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 2})


def batches(encoder, texts: list[str], size: int = 16) -> list[dict]:
    out = []
    for start in range(0, len(texts), size):
        features = encoder.preprocess(texts[start: start + size], "document")
        out.append({k: features[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")})
    return out


def run(compiled, feeds: list[dict]) -> list[list[np.ndarray]]:
    request = compiled.create_infer_request()
    return [[np.array(v, dtype=np.float32) for v in request.infer(f, share_outputs=False).values()] for f in feeds]


def relative_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.linalg.norm((a - b)[mask]) / np.linalg.norm(b[mask]))


def vector_errors(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """max abs, mean and max 1 - cosine of the L2-normalised token vectors at real tokens."""
    a, b = a[mask], b[mask]
    a, b = a / np.linalg.norm(a, axis=-1, keepdims=True), b / np.linalg.norm(b, axis=-1, keepdims=True)
    cos = (a * b).sum(-1)
    return float(np.abs(a - b).max()), float((1 - cos).mean()), float((1 - cos).max())


@torch.inference_mode()
def torch_layers(encoder, feeds: list[dict], autocast: bool) -> list[list[np.ndarray]]:
    bert = encoder.transformer.auto_model
    norms = [bert.embeddings.LayerNorm] + [m for layer in bert.encoder.layer
                                           for m in (layer.attention.output.LayerNorm, layer.output.LayerNorm)]
    out = []
    for f in feeds:
        captured: list[np.ndarray] = []
        hooks = [n.register_forward_hook(lambda _m, _i, o, into=captured: into.append(o.float().numpy()))
                 for n in norms]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            bert(input_ids=torch.from_numpy(f["input_ids"]), attention_mask=torch.from_numpy(f["attention_mask"]))
        for h in hooks:
            h.remove()
        out.append(captured)
    return out


def main() -> None:
    import openvino

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    encoder = MultiVectorEncoder.default(device="cpu", dtype="float32", backend="torch")
    path = export(encoder.transformer.auto_model, cache_root())
    feeds = batches(encoder, cranfield_texts()[0][: args.documents])
    masks = [f["attention_mask"].astype(bool) for f in feeds]
    core = openvino.Core()

    # outputs: the model's own (the last LayerNorm), then the added ones (every other LayerNorm)
    exact = [o[1:] + o[:1] for o in run(compile_model(core, path, "f32", extra_outputs=True), feeds)]
    bf16 = [o[1:] + o[:1] for o in run(compile_model(core, path, "bf16", extra_outputs=True), feeds)]
    t_exact, t_mixed = torch_layers(encoder, feeds, False), torch_layers(encoder, feeds, True)
    names = ["embeddings"] + [f"layer {i} {part}" for i in range(6) for part in ("attention", "FFN")]
    rows = []
    for j, name in enumerate(names):
        ov_error = np.mean([relative_error(b[j], e[j], m) for b, e, m in zip(bf16, exact, masks)])
        torch_error = np.mean([relative_error(b[j], e[j], m) for b, e, m in zip(t_mixed, t_exact, masks)])
        rows.append([name, f"{ov_error:.2e}", f"{torch_error:.2e}"])
    print(f"{sum(int(m.sum()) for m in masks)} tokens of {args.documents} Cranfield documents\n")
    print(markdown_table(["output of", "OpenVINO bf16 hint: relative error", "torch autocast: relative error"], rows))

    model = core.read_model(str(path))
    variants = {"float32 (reference)": ("f32", []), "bfloat16 hint, nothing kept": ("bf16", [])}
    variants.update({f"bfloat16, {name} in float32": ("bf16", ops) for name, ops in roles(model).items()})
    compiled = {name: compile_model(core, path, hint, ops) for name, (hint, ops) in variants.items()}
    outputs = {name: run(c, feeds) for name, c in compiled.items()}
    times = {name: [] for name in compiled}
    for _ in range(args.repeats):
        for name, c in compiled.items():
            start = time.perf_counter()
            run(c, feeds)
            times[name].append(time.perf_counter() - start)
    reference = outputs["float32 (reference)"]
    rows = []
    for name in compiled:
        errors = np.array([vector_errors(o[0], r[0], m) for o, r, m in zip(outputs[name], reference, masks)])
        rows.append([name, f"{errors[:, 0].max():.1e}", f"{errors[:, 1].mean():.1e}", f"{errors[:, 2].max():.1e}",
                     f"{args.documents / min(times[name]):.1f}"])
    print()
    print(markdown_table(["graph", "max abs diff", "mean 1-cos", "max 1-cos", "documents/s"], rows))
    flags = sorted(set(cpu_flags()) & {"amx_bf16", "avx512_bf16"})
    print(f"\nopenvino {openvino.__version__}, torch {torch.__version__}, 2 threads, CPU flags {flags}, "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
