"""Shared fixtures: the read-only ../shared folder (override with MAXSIM_SHARED)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAXSIM_SHARED", ROOT.parent / "shared"))
MODELS = SHARED / "models"
DATA = SHARED / "data"
REFERENCE_MODELS = ["st6-tiny-bert", "st6-tiny-modernbert", "seed-layout-tiny-modernbert",
                    "pylate-tiny-bert", "stanford-tiny-bert"]


def probe_texts():
    """QUERIES, DOCUMENTS of shared/models/texts.py."""
    sys.path.insert(0, str(MODELS))
    try:
        import texts
    finally:
        sys.path.pop(0)
    return texts.QUERIES, texts.DOCUMENTS


@pytest.fixture(scope="session")
def shared():
    if not SHARED.is_dir():
        pytest.fail(f"shared folder {SHARED} not found; set MAXSIM_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def default_model():
    from maxsim import MultiVectorEncoder

    return MultiVectorEncoder.default(device="cpu")


@pytest.fixture(scope="session")
def tiny_model():
    """A small real model (BERT 2 layers, hidden 64, Dense 64->32) for fast tests."""
    from maxsim import MultiVectorEncoder

    return MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu")
