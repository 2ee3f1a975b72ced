"""backend="onnx" / "openvino": float32 outputs equal the torch float32 path, the export cache is reused,
OpenVINO bfloat16 stays close, and misuse raises clear errors."""

import shutil
import sys

import numpy as np
import pytest
import torch

from conftest import MODELS, TINY_MODEL, probe_texts
from maxsim import MultiVectorEncoder
from maxsim.errors import InvalidInputError, ModelLoadError
from maxsim.models.backends import weights_key

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

QUERIES, DOCUMENTS = probe_texts()
LOADERS = {"tiny": lambda **kw: MultiVectorEncoder(TINY_MODEL, device="cpu", **kw),
           "default": lambda **kw: MultiVectorEncoder.default(device="cpu", **kw)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("backend-cache"))


@pytest.fixture(scope="module")
def load(cache):
    """load(model, backend, **kw) -> a MultiVectorEncoder using the module's export cache (memoised)."""
    made = {}

    def get(model, backend, dtype="float32"):
        if (model, backend, dtype) not in made:
            made[model, backend, dtype] = LOADERS[model](backend=backend, dtype=dtype,
                                                         backend_options={"cache_dir": cache})
        return made[model, backend, dtype]

    return get


def max_abs(a, b) -> float:
    assert [x.shape for x in a] == [y.shape for y in b], "token counts differ"
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.parametrize("model", ["tiny", "default"])
def test_float32_backends_equal_the_torch_path(request, load, model, backend):
    reference = request.getfixturevalue("tiny_model" if model == "tiny" else "default_model")
    encoder = load(model, backend)
    assert encoder.precision == "float32" and encoder.runtime.backend == backend
    for method, texts in (("encode_query", QUERIES), ("encode_document", DOCUMENTS)):
        for batch_size in (1, 3, 64):  # one text per batch, padded batches of different lengths, one batch
            expected = getattr(reference, method)(texts, batch_size=batch_size)
            assert max_abs(getattr(encoder, method)(texts, batch_size=batch_size), expected) < 1e-4
    emb, mask = encoder.encode_query(QUERIES, pad=True)
    ref_emb, ref_mask = reference.encode_query(QUERIES, pad=True)
    assert np.array_equal(mask, ref_mask) and np.abs(emb - ref_emb).max() < 1e-4
    scores = encoder.similarity(encoder.encode_query(QUERIES), encoder.encode_document(DOCUMENTS))
    np.testing.assert_allclose(scores, reference.similarity(reference.encode_query(QUERIES),
                                                            reference.encode_document(DOCUMENTS)), atol=1e-3)


def test_tiny_model_keeps_query_expansion_and_prompts(load, tiny_model):
    encoder = load("tiny", "onnx")
    assert encoder.prompts == tiny_model.prompts == {"query": "[Q] ", "document": "[D] "}
    lengths = [len(q) for q in encoder.encode_query(["a", "a much longer query about wings and drag"])]
    assert lengths == [32, 32]  # expanded to 32 with [MASK]s, as the torch path does


def test_export_happens_once_per_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MAXSIM_CACHE", str(tmp_path / "cache"))
    first = MultiVectorEncoder(TINY_MODEL, device="cpu", backend="onnx")
    folder = first.runtime.path.parent
    assert folder.parent == tmp_path / "cache" / "onnx" and folder.name == weights_key(first.transformer.auto_model)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {"model.onnx", "model.onnx.data"} <= set(stamps)
    copy = shutil.copytree(TINY_MODEL, tmp_path / "same-weights")  # another folder, same weights: same export
    for again in (MultiVectorEncoder(TINY_MODEL, device="cpu", backend="onnx"),
                  MultiVectorEncoder(copy, device="cpu", backend="openvino")):
        assert again.runtime.path == first.runtime.path
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert [p.name for p in (tmp_path / "cache" / "onnx").iterdir()] == [folder.name]  # no staging left


def test_weights_key_follows_the_weights(tiny_model):
    backbone = tiny_model.transformer.auto_model
    key = weights_key(backbone)
    weight = next(backbone.parameters())
    with torch.no_grad():
        weight[0, 0] += 1.0
        try:
            assert weights_key(backbone) != key
        finally:
            weight[0, 0] -= 1.0
    assert weights_key(backbone) == key


def test_openvino_bfloat16_stays_close(load, default_model):
    """dtype="mixed" = OpenVINO's bfloat16 hint: not equal (nDCG@10 in docs/models.md), same directions."""
    encoder = load("default", "openvino", "mixed")
    assert encoder.precision == "mixed" and encoder.runtime.path == load("default", "onnx").runtime.path
    for method, texts in (("encode_query", QUERIES), ("encode_document", DOCUMENTS)):
        got, expected = getattr(encoder, method)(texts), getattr(default_model, method)(texts)
        assert max_abs(got, expected) < 2e-2
        assert min(float((x * y).sum(-1).min()) for x, y in zip(got, expected)) > 0.999


def test_backend_misuse_raises_clear_errors(load, cache):
    with pytest.raises(InvalidInputError, match="backend 'tensorrt' is not known"):
        MultiVectorEncoder(TINY_MODEL, backend="tensorrt")
    with pytest.raises(InvalidInputError, match="quantize"):  # int8 lost quality: not offered
        MultiVectorEncoder(TINY_MODEL, backend="onnx", backend_options={"quantize": "int8"})
    with pytest.raises(InvalidInputError, match="cache_dir"):
        MultiVectorEncoder(TINY_MODEL, backend="torch", backend_options={"cache_dir": "x"})  # torch takes none
    with pytest.raises(InvalidInputError, match="CPU only"):
        MultiVectorEncoder(TINY_MODEL, backend="onnx", device="cuda")
    with pytest.raises(InvalidInputError, match="dtype='bfloat16' is not supported with backend='onnx'"):
        MultiVectorEncoder(TINY_MODEL, backend="onnx", dtype="bfloat16", backend_options={"cache_dir": cache})
    encoder = load("tiny", "onnx")
    with pytest.raises(InvalidInputError, match="inference only"):
        encoder.train()
    features = encoder.preprocess(["a query"], "query")
    with pytest.raises(InvalidInputError, match="inference only"):
        encoder(features, "query")  # gradients on: a training step
    with torch.no_grad():
        assert encoder(features, "query")["token_embeddings"].shape == (1, 32, 32)
    assert not encoder.training


def test_missing_runtime_and_unwritable_cache(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: import raises ImportError
    with pytest.raises(ModelLoadError, match=r"pip install maxsim\[onnx\]"):
        MultiVectorEncoder(TINY_MODEL, backend="onnx")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(ModelLoadError, match="MAXSIM_CACHE"):
        MultiVectorEncoder(TINY_MODEL, backend="openvino", backend_options={"cache_dir": blocked})


def test_documents_of_a_modernbert_backbone(tmp_path):
    """Another architecture (rotary, sliding-window attention); documents only: see docs/models.md
    (Backends) for the query rows the exported graph computes differently in this tiny window."""
    reference = MultiVectorEncoder(MODELS / "st6-tiny-modernbert", device="cpu", dtype="float32")
    encoder = MultiVectorEncoder(MODELS / "st6-tiny-modernbert", device="cpu", backend="onnx",
                                 backend_options={"cache_dir": tmp_path})
    for batch_size in (1, 3):
        assert max_abs(encoder.encode_document(DOCUMENTS, batch_size=batch_size),
                       reference.encode_document(DOCUMENTS, batch_size=batch_size)) < 1e-4


def test_openvino_encodes_correctly_from_many_threads(load):
    """One infer request per thread: concurrent encodes (the service's threads) equal serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = load("tiny", "openvino")
    serial = [encoder.encode_document(DOCUMENTS[i::4], batch_size=2) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda i: encoder.encode_document(DOCUMENTS[i::4], batch_size=2), range(4)))
            for a, b in zip(serial, parallel):
                assert max_abs(a, b) == 0


def test_cli_backend_flag_runs_that_backend(tmp_path, monkeypatch):
    """``--backend onnx`` on a command that loads a model: the vectors of the ONNX Runtime path (equal to torch
    float32 within 1e-4, not bit-equal), and an unknown name is refused naming the choices."""
    from safetensors.numpy import load_file
    from typer.testing import CliRunner

    from maxsim.cli import app

    monkeypatch.setenv("MAXSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MAXSIM_BACKEND", "torch")  # the command sets it: restored after the test
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(f'{{"_id": "d{i}", "text": {text!r}}}\n'.replace("'", '"')
                              for i, text in enumerate(["wings make lift", "heat flows in slabs"])))
    runner = CliRunner()
    for backend in ("torch", "onnx"):
        result = runner.invoke(app, ["encode", str(corpus), "--model", str(TINY_MODEL), "--backend", backend,
                                     "--output", str(tmp_path / f"{backend}.safetensors")])
        assert result.exit_code == 0, result.output
    torch_vectors, onnx_vectors = (load_file(tmp_path / f"{b}.safetensors")["embeddings"] for b in ("torch", "onnx"))
    assert torch_vectors.shape == onnx_vectors.shape
    assert 0 < np.abs(torch_vectors - onnx_vectors).max() < 1e-4  # a different runtime ran
    result = runner.invoke(app, ["encode", str(corpus), "--backend", "tpu", "--output",
                                 str(tmp_path / "x.safetensors")])
    assert result.exit_code == 2 and "--backend 'tpu' is not known" in result.output
