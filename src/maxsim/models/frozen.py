"""A model frozen for searching on the CPU without loading it: ``maxsim search`` runs one of these
instead of building the model (transformers' import and the weights alone take seconds) once the
same model has been frozen.

``freeze(encoder, source)`` writes, for a model whose ``encode`` runs its backbone in OpenVINO (the
``dtype="auto"`` path on CPUs with bfloat16 dot products, or ``backend="openvino"``), what inference
needs into ``<cache>/frozen/<key>/``: the tokenizer (``tokenizer.json``), the per-task lengths,
prompts and query expansion, the token steps (Dense weights as ``.npy``, the scoring mask, the
normalisation) and the path of the ONNX export. ``thaw(source)`` reads it back as a
``FrozenEncoder``: the ``tokenizers`` library, OpenVINO (its compiled model cached beside the
export) and numpy, the same computation as the model's ``encode``. ``<key>`` hashes the source
(``"default"`` or a model folder) with its files' sizes and modification times, so a changed model
is frozen again; a hub id is not frozen (resolving it needs the hub client).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

FROZEN_VERSION = "1"  # part of the key: bump when the snapshot's contents change
TASKS = ("query", "document")


class FrozenEncoder:
    """Inference only, CPU only: ``encode`` (as ``MultiVectorEncoder.encode`` without its tensor and
    padding options), ``encode_query``, ``encode_document``, ``token_layout`` (for explanations),
    ``dim``, ``precision``, ``prompts``."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        from maxsim.models.runtimes import PRECISIONS, compile_openvino

        self.folder = Path(folder)
        self.spec = json.loads((self.folder / "pipeline.json").read_text(encoding="utf-8"))
        self.dim, self.precision, self.prompts = self.spec["dim"], self.spec["precision"], self.spec["prompts"]
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self._lock, self._requests = threading.Lock(), threading.local()
        self._dense = {i: (np.load(self.folder / f"dense-{i}.weight.npy"), _maybe(self.folder / f"dense-{i}.bias.npy"))
                       for i, step in enumerate(self.spec["steps"]) if step["kind"] == "dense"}
        self._compiled = compile_openvino(Path(self.spec["onnx"]), PRECISIONS["openvino"][self.precision], _threads())

    # -- tokenization ----------------------------------------------------------------------------
    def _encodings(self, texts: list[str], task: str):
        """``tokenizers.Encoding`` of each text with its task's prompt, truncated to the task's length."""
        prompt = self.prompts.get(task, "")
        with self._lock:  # truncation is tokenizer state
            self.tokenizer.enable_truncation(self.spec["lengths"][task], direction=self.spec["truncation_side"])
            return self.tokenizer.encode_batch([prompt + text for text in texts], add_special_tokens=True)

    def _collate(self, ids: list[list[int]], task: str) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` (B, T) int64 and ``expansion`` (B, T) bool, as
        ``Transformer.collate`` pads and expands them."""
        expansion = self.spec["expansion"] if task == "query" else None
        width = max([len(x) for x in ids] + [expansion["length"] if expansion else 0])
        input_ids = np.full((len(ids), width), self.spec["pad_id"], dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, :len(seq)] = seq
        positions = np.arange(width)
        attention = positions[None, :] < np.array([len(x) for x in ids])[:, None]
        expanded = np.zeros_like(attention)
        if expansion:
            expanded = ~attention & (positions[None, :] < expansion["length"])
            input_ids[expanded] = expansion["id"]
            attention = attention | expanded if expansion["attend"] else attention
        return {"input_ids": input_ids, "attention_mask": attention.astype(np.int64), "expansion": expanded}

    def _scored(self, features: dict, task: str) -> np.ndarray:
        """(B, T) bool: the positions with a vector (``MultiVectorMask``'s rule, else attended ones)."""
        mask = features["attention_mask"].astype(bool)
        for step in self.spec["steps"]:
            if step["kind"] != "mask":
                continue
            if task == "query":
                mask = mask | features["expansion"]
            if task in step["skiplist_tasks"] and step["skiplist_ids"]:
                mask = mask & ~np.isin(features["input_ids"], step["skiplist_ids"])
            if task != "query" and step["keep_only_token_ids"]:
                mask = mask & np.isin(features["input_ids"], step["keep_only_token_ids"])
        return mask

    def token_layout(self, text: str, task: str) -> dict:
        """As ``maxsim.search.explain.token_layout``: ``tokens``, ``ids``, ``scored``, ``spans``."""
        encoding = self._encodings([text], task)[0]
        features = self._collate([encoding.ids], task)
        ids = features["input_ids"][0].tolist()
        prompt = len(self.prompts.get(task, ""))
        spans = [(start - prompt, end - prompt) if end > start and start >= prompt else None
                 for start, end in encoding.offsets] + [None] * (len(ids) - len(encoding.ids))
        return {"tokens": [self.tokenizer.id_to_token(i) for i in ids], "ids": ids,
                "scored": self._scored(features, task)[0], "spans": spans}

    # -- encoding ------------------------------------------------------------------------------
    def _forward(self, features: dict, task: str) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, dim) float32 token vectors after the steps, and the (B, T) scoring mask."""
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self._compiled.create_infer_request()
        x = np.asarray(request.infer({"input_ids": features["input_ids"],
                                      "attention_mask": features["attention_mask"]}, share_outputs=False)[0],
                       dtype=np.float32)
        for i, step in enumerate(self.spec["steps"]):
            if step["kind"] == "dense":
                weight, bias = self._dense[i]
                y = x @ weight.T + (0 if bias is None else bias)
                x = y + x if step["use_residual"] else y
            elif step["kind"] == "normalize" and step["active"]:
                x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        return x, self._scored(features, task)

    def encode(self, texts, task: str = "document", batch_size: int = 32, **ignored) -> list[np.ndarray]:
        """Texts -> one float32 array (n_tokens_i, dim) each, in length-sorted batches like the model's."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        ids = [e.ids for e in self._encodings(texts, task)]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out: list = [None] * len(ids)
        for start in range(0, len(ids), batch_size):
            rows = order[start: start + batch_size]
            vectors, mask = self._forward(self._collate([ids[i] for i in rows], task), task)
            for row, v, m in zip(rows, vectors, mask):
                out[row] = v[m]
        return out[0] if single else out

    def encode_query(self, texts, **kwargs):
        return self.encode(texts, task="query", **kwargs)

    def encode_document(self, texts, **kwargs):
        return self.encode(texts, task="document", **kwargs)


def _maybe(path: Path) -> np.ndarray | None:
    return np.load(path) if path.exists() else None


def _threads() -> int:
    """The OpenVINO threads the model's runtime uses: ``$OMP_NUM_THREADS`` (torch's count) when set, else
    0 (OpenVINO's default: one per physical core, as torch's)."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0)


# -- writing and finding snapshots -----------------------------------------------------------------
def source_key(source: str) -> str | None:
    """The snapshot key of a model source ("default" or a folder), None for a hub id."""
    from maxsim import __version__

    if source == "default":
        from maxsim.models.default import DOCUMENT_LENGTH, QUERY_LENGTH, minilm_folder

        folder, extra = Path(minilm_folder()), [QUERY_LENGTH, DOCUMENT_LENGTH]
    elif Path(source).is_dir():
        folder, extra = Path(source).resolve(), []
    else:
        return None
    files = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in folder.rglob("*") if p.is_file())
    record = json.dumps([FROZEN_VERSION, __version__, source, str(folder), extra, files])
    return hashlib.blake2b(record.encode(), digest_size=16).hexdigest()


def snapshot_folder(source: str, precision: str) -> Path | None:
    """Where the snapshot of ``source`` at ``precision`` lives (None for a hub id)."""
    from maxsim.cache import cache_root

    key = source_key(source)
    return None if key is None else cache_root() / "frozen" / f"{key}-{precision}"


def thaw(source: str, precision: str) -> FrozenEncoder | None:
    """The frozen ``source`` at ``precision``, or None (never frozen so, or its export is gone)."""
    folder = snapshot_folder(source, precision)
    if folder is None or not (folder / "pipeline.json").is_file():
        return None
    try:
        return FrozenEncoder(folder)
    except Exception:  # noqa: BLE001 - a stale or damaged snapshot: the caller loads the model instead
        return None


def freeze(encoder, source: str) -> Path | None:
    """Write the snapshot of ``encoder`` (loaded from ``source``) unless it is there; its folder,
    or None when the encoder does not encode through OpenVINO or has a step a snapshot cannot hold."""
    spec = _spec(encoder)
    folder = None if spec is None else snapshot_folder(source, spec["precision"])
    if folder is None or (folder / "pipeline.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".freeze-", dir=folder.parent))
    try:
        encoder.tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        for i, step in enumerate(encoder.steps):
            if spec["steps"][i]["kind"] == "dense":
                np.save(staging / f"dense-{i}.weight.npy", step.linear.weight.detach().float().cpu().numpy())
                if step.linear.bias is not None:
                    np.save(staging / f"dense-{i}.bias.npy", step.linear.bias.detach().float().cpu().numpy())
        (staging / "pipeline.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        os.replace(staging, folder)
    except OSError:  # an unwritable cache, or another process froze it first: either way nothing to do
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _spec(encoder) -> dict | None:
    """What ``pipeline.json`` holds for ``encoder``, or None when it cannot be frozen."""
    from maxsim.cache import cache_root
    from maxsim.models.backends import export
    from maxsim.models.runtimes import PRECISIONS

    if getattr(encoder, "modality", "text") != "text":
        return None
    if encoder.backend == "openvino":
        precision, onnx = encoder.precision, encoder.runtime.path
    elif getattr(encoder, "auto_backend", None) == "openvino" and encoder.device.type == "cpu":
        precision = encoder.precision
        onnx = export(encoder.transformer.auto_model, cache_root(encoder.backend_options.get("cache_dir")))
    else:
        return None
    steps = [_step(step) for step in encoder.steps]
    transformer, tokenizer = encoder.transformer, encoder.tokenizer
    if None in steps or not getattr(tokenizer, "is_fast", False) or precision not in PRECISIONS["openvino"]:
        return None
    expansion = transformer.query_expansion and {**transformer.query_expansion, "id": transformer.expansion_id}
    return {"version": FROZEN_VERSION, "onnx": str(onnx), "precision": precision, "dim": encoder.dim,
            "prompts": dict(encoder.prompts), "lengths": {task: transformer.max_length(task) for task in TASKS},
            "truncation_side": tokenizer.truncation_side, "expansion": expansion or None,
            "pad_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0, "steps": steps}


def _step(step) -> dict | None:
    """One token step as data (None for a kind a snapshot cannot hold, e.g. token pooling)."""
    from maxsim.models.modules import Dense, MultiVectorMask, Normalize

    if isinstance(step, Dense):
        return {"kind": "dense", "use_residual": step.use_residual}
    if isinstance(step, MultiVectorMask):
        return {"kind": "mask", "skiplist_ids": step.skiplist_ids.tolist(), "keep_only_token_ids":
                step.keep_only_token_ids, "skiplist_tasks": [t or "document" for t in step.skiplist_tasks]}
    if isinstance(step, Normalize):
        return {"kind": "normalize", "active": step.module_input_name == "token_embeddings"
                and step.module_output_name == "token_embeddings"}
    return None
