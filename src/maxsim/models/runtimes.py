"""Backend names, the packages each needs, the export cache and OpenVINO's compile: what runs an
exported backbone (``maxsim.models.frozen``) needs of the backends, without importing torch.
``maxsim.models.backends`` exports a torch backbone and runs it (``Runtime``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from maxsim.errors import InvalidInputError, ModelLoadError

BACKENDS = ("auto", "torch", "onnx", "openvino")
OPTIONS = {"cache_dir", "num_threads"}
PRECISIONS = {"onnx": {"float32": None},  # encoder precision name -> runtime setting
              "openvino": {"float32": "f32", "mixed": "bf16"}}
# input shapes whose prepared kernels OpenVINO keeps (its default, 5000, grows ~1.3 MB per new (batch, length):
# 666 MB after 300 shapes of query batches; 32 shapes: 420 MB, no slower per inference)
SHAPES_CACHED = 32
NEEDS = {"onnx": (("onnxruntime", "onnx", "onnxscript"), "maxsim[onnx]"),
         "openvino": (("openvino", "onnx", "onnxscript"), "maxsim[openvino]")}


def check_backend(backend: str, options: dict | None) -> dict:
    """Validate the options of a backend (resolved by ``precision.resolve_backend``) -> a copy."""
    options = dict(options or {})
    unknown = set(options) - OPTIONS
    if unknown or (backend == "torch" and options):
        raise InvalidInputError(f"backend_options {sorted(unknown or options)} are not supported with "
                                f"backend={backend!r}; allowed with auto/onnx/openvino: {sorted(OPTIONS)}.")
    return options


def compile_openvino(path: Path, hint: str, threads: int):
    """The ONNX file ``path`` (``<cache>/onnx/<key>/model.onnx``) compiled for the CPU at the inference
    precision ``hint`` ("f32", "bf16"). OpenVINO keeps the compiled model beside the export, in
    ``<cache>/openvino/<key>/`` (its ``CACHE_DIR``), so later processes load it (a tenth of a second)
    instead of compiling again (seconds); the export's own folder is left as written."""
    return openvino_runtime().Core().compile_model(str(path), "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
        "CPU_RUNTIME_CACHE_CAPACITY": SHAPES_CACHED,
        "CACHE_DIR": str(path.parent.parent.parent / "openvino" / path.parent.name)})


def openvino_runtime():
    """The ``openvino`` package without its model converter: ``import openvino`` also imports
    ``openvino.tools.ovc`` (a third of the import's time, and of a one-off search's wait for it),
    which maxsim never uses: OpenVINO reads the ONNX export itself. The converter stays importable."""
    if "openvino" not in sys.modules:
        skipped = "openvino.tools.ovc" not in sys.modules
        if skipped:
            sys.modules["openvino.tools.ovc"] = None  # the package's own `try: from ... import` then skips it
        try:
            import openvino  # noqa: F401
        finally:
            if skipped:
                del sys.modules["openvino.tools.ovc"]
    return sys.modules["openvino"]


def announce_export(path: Path) -> None:
    """One line on stderr when a model is exported (once per weights): what, how big, where."""
    size = sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file())
    print(f"maxsim: exported the model's backbone to ONNX for the fast CPU path ({size / 1e6:.1f} MB, once per "
          f"model) in {path.parent}", file=sys.stderr)


def require(backend: str) -> None:
    missing = missing_packages(backend)
    if missing:
        raise ModelLoadError(f"backend={backend!r} needs the package {missing[0]}: pip install {NEEDS[backend][1]}")


def missing_packages(backend: str) -> list[str]:
    """The packages ``backend`` needs that cannot be found (not imported)."""
    return [m for m in NEEDS[backend][0] if importlib.util.find_spec(m) is None]
