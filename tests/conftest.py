"""Shared fixtures: reference models, collections and KD samples under tests/fixtures (see tests/README.md),
and the rule that a missing test dependency fails instead of skipping."""

import os
import re
import sys
from pathlib import Path

import pytest

# dtype="auto" is the exact float32 torch path in the suite (oracle parity, identical-score checks, also in
# the subprocesses it starts); tests of what "auto" picks unset it (test_encode_precision.py).
os.environ.setdefault("MAXSIM_DTYPE", "float32")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = FIXTURES  # the suite's former name for this folder (models/, data/, reference/)
MODELS = FIXTURES / "models"
DATA = FIXTURES / "data"
CRANFIELD = DATA / "cranfield"
TINY_MODEL = MODELS / "st6-tiny-bert"
REFERENCE_MODELS = ["st6-tiny-bert", "st6-tiny-modernbert", "seed-layout-tiny-modernbert",
                    "pylate-tiny-bert", "stanford-tiny-bert"]


def probe_texts():
    """QUERIES, DOCUMENTS of tests/fixtures/models/texts.py."""
    sys.path.insert(0, str(MODELS))
    try:
        import texts
    finally:
        sys.path.pop(0)
    return texts.QUERIES, texts.DOCUMENTS


@pytest.fixture(scope="session")
def shared():
    """The fixtures folder (models/, data/, reference/)."""
    return FIXTURES


@pytest.fixture(scope="session")
def cranfield():
    """Folder of the Cranfield collection (corpus.jsonl, queries.jsonl, qrels.tsv)."""
    return CRANFIELD


@pytest.fixture(scope="session")
def default_model():
    from maxsim import MultiVectorEncoder

    return MultiVectorEncoder.default(device="cpu", dtype="float32")  # the exact path: oracle tests compare it


@pytest.fixture(scope="session")
def tiny_model():
    """A small real model (BERT 2 layers, hidden 64, Dense 64->32) for fast tests."""
    from maxsim import MultiVectorEncoder

    return MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32")  # the exact path: oracle tests compare it


@pytest.fixture(scope="session")
def page_checkpoint(tmp_path_factory):
    """A tiny random ColQwen2 checkpoint (tests/page_checkpoints.py; grids follow the page's shape)."""
    from page_checkpoints import build

    return build("colqwen2", tmp_path_factory.mktemp("page-model") / "colqwen2")


@pytest.fixture(scope="session")
def page_model(page_checkpoint):
    """The ``PageEncoder`` of ``page_checkpoint`` (float32, CPU)."""
    from maxsim.models.pages import PageEncoder

    return PageEncoder(page_checkpoint, device="cpu", dtype="float32")


# Packages the `test` extra installs (pyproject.toml): a test that importorskips one of them fails when it is
# missing, so CI never passes by skipping; under CI=1 every missing import fails.
REQUIRED = {"ray", "langchain_core", "llama_index", "pypdf", "pyarrow", "charset_normalizer", "matplotlib", "onnx",
            "onnxruntime", "onnxscript", "openvino", "hypothesis", "sentence_transformers", "pytrec_eval", "httpx",
            "playwright", "psutil"}
MISSING = re.compile(r"could not import '([^']+)'")


def required_missing(report) -> str | None:
    """The required package whose importorskip skipped ``report``, if any."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    found = MISSING.search(str(report.longrepr[2]))
    name = found and found.group(1)
    return name if name and (name.split(".")[0] in REQUIRED or os.environ.get("CI")) else None


def fail_required(report) -> None:
    name = required_missing(report)
    if name:
        report.outcome = "failed"
        report.longrepr = f"{name} is missing: install the test extra (pip install -e '.[test]')."


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_required(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    fail_required(outcome.get_result())
