"""backend and dtype as two knobs (backend="auto": OpenVINO bfloat16 on bfloat16 CPUs, else torch; dtype only the
precision within the backend; $MAXSIM_DTYPE / $MAXSIM_BACKEND pin "auto"), the CPU-flag check behind "mixed", and
how close "mixed" and "auto" stay to float32."""

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL, probe_texts
from maxsim import MultiVectorEncoder
from maxsim.models import precision

QUERIES, DOCUMENTS = probe_texts()


@pytest.fixture
def flags(monkeypatch):
    def use(value):
        monkeypatch.setenv("MAXSIM_CPU_FLAGS", value)
        precision.cpu_flags.cache_clear()

    yield use
    monkeypatch.delenv("MAXSIM_CPU_FLAGS")  # before the cache is cleared, so it reads the real flags again
    precision.cpu_flags.cache_clear()


@pytest.mark.parametrize("value,warns", [("fpu avx2 avx512f avx512_bf16", False), ("amx_bf16 amx_tile", False),
                                         ("fpu avx2 avx512f", True), ("", True)])
def test_auto_is_float32_and_mixed_warns_without_bfloat16_units(flags, caplog, value, warns):
    flags(value)
    cpu = torch.device("cpu")
    assert precision.resolve_dtype("auto", cpu) == precision.resolve_dtype("float32", cpu) == "float32"
    assert precision.resolve_dtype(torch.bfloat16, cpu) == "bfloat16"
    assert not caplog.records
    assert precision.resolve_dtype("mixed", cpu) == "mixed"
    assert any("emulated" in r.getMessage() for r in caplog.records) == warns


def test_unknown_dtypes_are_refused():
    for bad in ("int8", "fp32", torch.int8):
        with pytest.raises(ValueError, match="dtype"):
            precision.resolve_dtype(bad, torch.device("cpu"))


def test_cpu_flags_read_from_proc_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.delenv("MAXSIM_CPU_FLAGS", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 sse\n\nprocessor\t: 1\nflags\t: fpu\n")
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    precision.cpu_flags.cache_clear()
    try:
        assert precision.cpu_flags() == ("fpu", "avx512_bf16", "sse")
        monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
        precision.cpu_flags.cache_clear()
        assert precision.cpu_flags() == ()
    finally:
        precision.cpu_flags.cache_clear()


def test_mixed_stays_close_to_float32_and_keeps_float32_weights(tmp_path):
    exact = MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32")
    mixed = MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="mixed", backend="torch")  # torch autocast
    assert mixed.precision == "mixed" and mixed.auto_backend is None
    assert {p.dtype for p in mixed.parameters()} == {torch.float32}
    for encode in ("encode_query", "encode_document"):
        a, b = getattr(exact, encode)(DOCUMENTS), getattr(mixed, encode)(DOCUMENTS)
        assert [x.shape for x in a] == [x.shape for x in b] and all(x.dtype == np.float32 for x in b)
        diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
        assert 0 < diff < 2e-2  # bfloat16 products: not identical, close (see bench/RESULTS.md)
    q, d = exact.encode_query(QUERIES), exact.encode_document(DOCUMENTS)
    qm, dm = mixed.encode_query(QUERIES), mixed.encode_document(DOCUMENTS)
    np.testing.assert_array_equal(np.argmax(exact.similarity(q, d), 1), np.argmax(mixed.similarity(qm, dm), 1))
    features = exact.preprocess(DOCUMENTS[:2], "document")
    with torch.no_grad():  # training's forward is not changed by the encoding precision
        torch.testing.assert_close(mixed(dict(features), "document")["token_embeddings"],
                                   exact(dict(features), "document")["token_embeddings"], rtol=0, atol=0)


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("export-cache"))


@pytest.fixture
def unpinned(monkeypatch, export_cache):
    """"auto" as users get it (the suite pins MAXSIM_DTYPE=float32), exporting into the module's cache."""
    monkeypatch.delenv("MAXSIM_DTYPE", raising=False)
    monkeypatch.delenv("MAXSIM_BACKEND", raising=False)
    monkeypatch.setenv("MAXSIM_CACHE", export_cache)


def close_to(a, b, bound=2e-2) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
    assert diff < bound
    return diff


def test_auto_is_float32_on_cpus_without_bfloat16_and_when_pinned(flags, unpinned, monkeypatch):
    reference = MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32").encode_document(DOCUMENTS)
    for value, pin in (("fpu avx2 avx512f", None), ("avx512_bf16", "float32")):
        flags(value)
        if pin:
            monkeypatch.setenv("MAXSIM_DTYPE", pin)
        model = MultiVectorEncoder(TINY_MODEL, device="cpu")
        assert model.precision == "float32" and model.auto_backend is None
        for x, y in zip(model.encode_document(DOCUMENTS), reference):
            np.testing.assert_array_equal(x, y)
    monkeypatch.setenv("MAXSIM_DTYPE", "bfloat16")
    assert precision.resolve_dtype("auto", torch.device("cpu")) == "bfloat16"
    monkeypatch.setenv("MAXSIM_DTYPE", "fp8")
    with pytest.raises(ValueError, match="MAXSIM_DTYPE='fp8'"):
        MultiVectorEncoder(TINY_MODEL, device="cpu")


def test_auto_runs_openvino_bfloat16_in_eval_and_torch_float32_in_training(flags, unpinned):
    pytest.importorskip("openvino")
    flags("amx_bf16 avx512_bf16")
    exact = MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32")
    model = MultiVectorEncoder(TINY_MODEL, device="cpu")
    assert (model.auto_backend, model.precision) == ("openvino", "mixed")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    fast = model.encode_document(DOCUMENTS)
    assert model._encode_runtime().backend == "openvino"
    assert close_to(fast, exact.encode_document(DOCUMENTS)) > 0  # bfloat16: close, not equal
    q, qe = model.encode_query(QUERIES), exact.encode_query(QUERIES)
    np.testing.assert_array_equal(np.argmax(model.similarity(q, fast), 1),
                                  np.argmax(exact.similarity(qe, exact.encode_document(DOCUMENTS)), 1))
    model.train()  # training (and encoding while training) is the torch path
    assert model._encode_runtime() is None
    with torch.no_grad():  # what an optimizer step does: weights change in place
        for module in (model, exact):
            next(module.transformer.auto_model.parameters()).mul_(1.5)
    model.eval()  # trained weights: "auto" stays on the exact path (no export per evaluation)
    for x, y in zip(model.encode_document(DOCUMENTS), exact.encode_document(DOCUMENTS)):
        np.testing.assert_array_equal(x, y)
    assert (model.auto_backend, model.precision) == (None, "float32")


def test_auto_falls_back_to_float32_when_the_export_cache_is_unwritable(flags, unpinned, monkeypatch, tmp_path,
                                                                         caplog):
    pytest.importorskip("openvino")
    flags("avx512_bf16")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("MAXSIM_CACHE", str(blocker))
    model = MultiVectorEncoder(TINY_MODEL, device="cpu")
    reference = MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32").encode_document(DOCUMENTS)
    for x, y in zip(model.encode_document(DOCUMENTS), reference):
        np.testing.assert_array_equal(x, y)
    assert model.precision == "float32" and "falls back to float32" in caplog.text


BF16, NO_BF16 = "amx_bf16 avx512_bf16", "fpu avx2 avx512f"
KNOBS = [  # backend, dtype, CPU flags, environment -> backend, "auto"'s runtime, explicit runtime, precision
    ("auto", "auto", BF16, {}, "auto", "openvino", None, "mixed"),
    ("torch", "auto", BF16, {}, "torch", None, None, "float32"),  # backend="torch" stays in torch
    ("auto", "float32", BF16, {}, "auto", None, None, "float32"),
    ("auto", "mixed", BF16, {}, "auto", "openvino", None, "mixed"),
    ("torch", "mixed", BF16, {}, "torch", None, None, "mixed"),  # torch autocast
    ("auto", "bfloat16", BF16, {}, "auto", None, None, "bfloat16"),
    ("openvino", "auto", BF16, {}, "openvino", None, "openvino", "mixed"),
    ("openvino", "auto", NO_BF16, {}, "openvino", None, "openvino", "float32"),
    ("onnx", "auto", BF16, {}, "onnx", None, "onnx", "float32"),
    ("auto", "auto", NO_BF16, {}, "auto", None, None, "float32"),
    ("auto", "auto", BF16, {"MAXSIM_DTYPE": "float32"}, "auto", None, None, "float32"),
    ("auto", "auto", BF16, {"MAXSIM_BACKEND": "torch"}, "torch", None, None, "float32"),
    ("auto", "auto", NO_BF16, {"MAXSIM_BACKEND": "openvino"}, "openvino", None, "openvino", "float32"),
]


@pytest.mark.parametrize("backend,dtype,cpu,env,resolved,auto,runtime,precision_name", KNOBS)
def test_backend_and_dtype_resolve_as_documented(flags, unpinned, monkeypatch, backend, dtype, cpu, env, resolved,
                                                 auto, runtime, precision_name):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    flags(cpu)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    model = MultiVectorEncoder(TINY_MODEL, device="cpu", backend=backend, dtype=dtype)
    assert (model.backend, model.auto_backend, model.precision) == (resolved, auto, precision_name)
    assert (model.runtime.backend if model.runtime else None) == runtime
    assert (model._encode_runtime().backend if model._encode_runtime() else None) == (auto or runtime)


def test_torch_backend_with_auto_dtype_is_the_exact_torch_path(flags, unpinned):
    flags(BF16)
    reference = MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32").encode_document(DOCUMENTS)
    model = MultiVectorEncoder(TINY_MODEL, device="cpu", backend="torch")
    for x, y in zip(model.encode_document(DOCUMENTS), reference):
        np.testing.assert_array_equal(x, y)


def test_unknown_backend_names_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="backend 'tensorrt' is not known"):
        MultiVectorEncoder(TINY_MODEL, backend="tensorrt")
    monkeypatch.setenv("MAXSIM_BACKEND", "tpu")
    with pytest.raises(ValueError, match="MAXSIM_BACKEND='tpu'"):
        MultiVectorEncoder(TINY_MODEL, device="cpu")
