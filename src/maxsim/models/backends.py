"""Inference backends: the Transformer's forward (input_ids, attention_mask -> token embeddings) in
ONNX Runtime or OpenVINO instead of torch; the token-level steps (Dense, mask, Normalize) stay in torch.

The backbone is exported once from the loaded torch module (``torch.onnx.export``, dynamic batch and
sequence axes) into ``<cache>/onnx/<key>/model.onnx``: ``<cache>`` is ``backend_options["cache_dir"]``,
else ``$MAXSIM_CACHE``, else ``$XDG_CACHE_HOME/maxsim`` (``~/.cache/maxsim``); ``<key>`` hashes the
backbone's weights and config, so any folder holding the same weights reuses the file. OpenVINO reads
the same ONNX file. No int8 option: ONNX Runtime's dynamic int8 quantisation lost up to 0.0077
nDCG@10 (docs/models.md, Backends).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from maxsim.cache import cache_root
from maxsim.errors import InvalidInputError, ModelLoadError
from maxsim.memory import release_file_pages, release_mappings
from maxsim.models.runtimes import PRECISIONS, announce_export, compile_openvino, require

EXPORT_VERSION = "1"  # part of the cache key: bump when the exported graph changes
KEEP_BUFFER_TOKENS = 4096  # OpenVINO keeps a request's buffers for the largest batch seen: freed above this


class Runtime:
    """The backbone forward in ``backend`` ("onnx" or "openvino") at ``precision`` ("float32", or
    "mixed" = OpenVINO's bfloat16 inference hint), CPU only; ``num_threads`` defaults to torch's."""

    def __init__(self, auto_model: torch.nn.Module, backend: str, precision: str, options: dict):
        if precision not in PRECISIONS[backend]:
            raise InvalidInputError(f"dtype={precision!r} is not supported with backend={backend!r}; use one of "
                                    f"{['auto', *PRECISIONS[backend]]}.")
        require(backend)
        self.backend, self.precision = backend, precision
        self.path = export(auto_model, cache_root(options.get("cache_dir")))
        threads = int(options.get("num_threads") or torch.get_num_threads())
        if backend == "onnx":
            import onnxruntime

            settings = onnxruntime.SessionOptions()
            settings.intra_op_num_threads = threads
            session = onnxruntime.InferenceSession(str(self.path), settings, providers=["CPUExecutionProvider"])
            self._run = lambda feeds: session.run(None, feeds)[0]
        else:
            self._compiled = compile_openvino(self.path, PRECISIONS[backend][precision], threads)
            release_file_pages(self.path.with_name(self.path.name + ".data"))  # read once, converted
            release_mappings(lambda name: name.endswith(".safetensors"))  # the torch weights: OpenVINO runs it
            self._requests = threading.local()  # an infer request is not thread-safe: one per thread
            self._run = self._openvino_run

    def _openvino_run(self, feeds: dict) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._compiled.create_infer_request()
        out = request.infer(feeds, share_outputs=False)[0]  # a copy: the request reuses its buffer
        if feeds["input_ids"].size > KEEP_BUFFER_TOKENS:  # a document batch: ~300 MB of buffers kept otherwise
            self._compiled.release_memory()
        return out

    def forward(self, features: dict) -> dict:
        """Adds ``token_embeddings`` (B, T, hidden) float32 for ``input_ids`` / ``attention_mask`` (B, T)."""
        if torch.is_grad_enabled():
            raise InvalidInputError(f"backend={self.backend!r} is inference only (no gradients): call encode*, or "
                                    "forward under torch.no_grad(); load with backend='torch' to train.")
        feeds = {name: features[name].cpu().numpy().astype(np.int64, copy=False)
                 for name in ("input_ids", "attention_mask")}
        features["token_embeddings"] = torch.from_numpy(np.asarray(self._run(feeds), dtype=np.float32))
        return features


def weights_key(auto_model: torch.nn.Module) -> str:
    """Hex digest of the backbone's class, config (paths and versions left out) and every weight's bytes."""
    digest = hashlib.blake2b(digest_size=16)
    config = {k: v for k, v in auto_model.config.to_dict().items()
              if not k.startswith("_") and k != "transformers_version"}
    digest.update(json.dumps([EXPORT_VERSION, type(auto_model).__name__, config], sort_keys=True,
                             default=str).encode())
    for name, tensor in sorted(auto_model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class _Backbone(torch.nn.Module):
    def __init__(self, auto_model):
        super().__init__()
        self.auto_model = auto_model

    def forward(self, input_ids, attention_mask):
        return self.auto_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


def export(auto_model: torch.nn.Module, root: Path) -> Path:
    """Export the float32 backbone to ``root/onnx/<key>/model.onnx`` unless it is there -> its path."""
    if next(auto_model.parameters()).dtype != torch.float32:
        raise InvalidInputError("backends export the float32 model: load it with dtype='auto' or 'float32'.")
    final = root / "onnx" / weights_key(auto_model)
    if (final / "model.onnx").exists():
        return final / "model.onnx"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=final.parent))
    except OSError as exc:
        raise ModelLoadError(f"cannot write the export cache {final.parent} ({exc}): set MAXSIM_CACHE or "
                             "backend_options={'cache_dir': ...} to a writable folder.") from None
    example = torch.ones(2, 6, dtype=torch.long)  # id 1 exists in any vocabulary; row 2 is padded
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet("torch.onnx._internal.exporter._registration"):
            warnings.simplefilter("ignore")  # and the exporter's notes on optional packages (torchvision)
            torch.onnx.export(_Backbone(auto_model).eval(), (example, mask),
                              str(staging / "model.onnx"), input_names=["input_ids", "attention_mask"],
                              output_names=["token_embeddings"], dynamo=True, external_data=True, verbose=False,
                              dynamic_shapes={"input_ids": dims, "attention_mask": dims})
        os.replace(staging, final)  # atomic: readers never see a partial export
        announce_export(final / "model.onnx")
    except Exception as exc:  # the exporter raises many types
        if not (final / "model.onnx").exists():  # else a concurrent export finished first: use it
            raise ModelLoadError(f"could not export {type(auto_model).__name__} to ONNX in {final.parent} "
                                 f"({type(exc).__name__}: {exc}); use backend='torch'.") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final / "model.onnx"


@contextlib.contextmanager
def _quiet(logger: str):
    """Only errors from ``logger`` inside the block."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
