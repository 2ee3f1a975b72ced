"""Shared fixtures: reference models, collections and KD samples under tests/fixtures (see tests/README.md)."""

import os
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
