"""``maxsim.models.frozen``: a frozen model encodes what the model encodes (OpenVINO path: prompts,
truncation, query expansion, Dense, scoring mask) with the same token layout for explanations;
snapshots follow the model's files; ``maxsim search`` freezes after its first search and the next
search runs without transformers, with the same hits."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, TINY_MODEL, probe_texts
from maxsim.models.frozen import freeze, snapshot_folder, thaw
from maxsim.search.explain import token_layout
from test_server import build_index


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("frozen-cache")


SEARCH = """
import atexit, sys
from maxsim.cli import main
sys.argv = ["maxsim", "search", sys.argv[1], "boundary layer heat transfer", "-k", "5", "--json"]
atexit.register(lambda: print("transformers loaded:", "transformers" in sys.modules, file=sys.stderr))
main()
"""


@pytest.fixture(scope="module")
def first_searches(tiny_model, cache, tmp_path_factory):
    """Two ``maxsim search`` processes on a fresh cache (as on a fresh machine), dtype "auto" on a CPU
    with bfloat16 units: the first exports, builds the model and freezes it. Their results."""
    folder = build_index(tmp_path_factory.mktemp("frozen-search") / "index", tiny_model, n=12)
    env = {key: value for key, value in os.environ.items()  # backend and dtype "auto", as users run it
           if key not in ("MAXSIM_DTYPE", "MAXSIM_BACKEND")}
    env.update(MAXSIM_CACHE=str(cache), MAXSIM_CPU_FLAGS="avx512_bf16",  # auto: OpenVINO at bfloat16
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    return [subprocess.run([sys.executable, "-c", SEARCH, str(folder)], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]


@pytest.fixture(scope="module")
def openvino_model(cache, first_searches):
    """The tiny model encoding through OpenVINO at float32 (its export: the one the first search made)."""
    from maxsim import MultiVectorEncoder

    os.environ["MAXSIM_CACHE"] = str(cache)  # snapshots and exports of this module
    yield MultiVectorEncoder(TINY_MODEL, device="cpu", dtype="float32", backend="openvino",
                             backend_options={"cache_dir": str(cache)})
    os.environ.pop("MAXSIM_CACHE")


@pytest.fixture(scope="module")
def frozen(openvino_model):
    folder = freeze(openvino_model, str(TINY_MODEL))
    assert folder == snapshot_folder(str(TINY_MODEL), "float32") and (folder / "pipeline.json").is_file()
    return thaw(str(TINY_MODEL), "float32")


def test_frozen_encodes_as_the_model(openvino_model, frozen):
    queries, documents = probe_texts()
    for task, texts in (("query", queries), ("document", documents)):
        ours, theirs = frozen.encode(texts, task=task), openvino_model.encode(texts, task=task)
        assert [len(v) for v in ours] == [len(v) for v in theirs]  # same kept positions (mask, expansion)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert frozen.dim == openvino_model.dim == 32


def test_frozen_token_layout_is_the_models(openvino_model, frozen):
    queries, documents = probe_texts()
    for task, text in [("query", q) for q in queries] + [("document", d) for d in documents]:
        ours, theirs = token_layout(frozen, text, task), token_layout(openvino_model, text, task)
        assert ours["ids"] == theirs["ids"] and ours["tokens"] == theirs["tokens"], text
        assert ours["scored"].tolist() == theirs["scored"].tolist() and ours["spans"] == theirs["spans"], text
        assert int(ours["scored"].sum()) == len(frozen.encode([text], task=task)[0])


def test_snapshots_follow_precision_source_and_files(frozen, tmp_path):
    mixed = thaw(str(TINY_MODEL), "mixed")  # frozen by the first search at bfloat16, beside the float32 one
    assert (frozen.precision, mixed.precision) == ("float32", "mixed") and frozen.folder != mixed.folder
    assert thaw("org/some-hub-model", "float32") is None and snapshot_folder("org/some-hub-model", "float32") is None
    copy = tmp_path / "tiny-copy"
    shutil.copytree(TINY_MODEL, copy)
    assert thaw(str(copy), "float32") is None  # another folder: not frozen yet
    key = snapshot_folder(str(copy), "float32")
    (copy / "1_Dense" / "config.json").write_text((copy / "1_Dense" / "config.json").read_text() + "\n")
    assert snapshot_folder(str(copy), "float32") != key  # an edited file: a new key


def test_second_search_runs_frozen_without_transformers(first_searches, cache):
    """A fresh machine: the first search exports (one line says so), builds the model and freezes it."""
    runs = first_searches
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr[-2000:]
    assert "transformers loaded: True" in runs[0].stderr  # the first loads the model and freezes it
    assert "transformers loaded: False" in runs[1].stderr
    exported = [line for line in runs[0].stderr.splitlines() if "export" in line or "torchvision" in line]
    assert len(exported) == 1 and "ONNX for the fast CPU path" in exported[0]  # what, how big, where: one line
    assert str(cache) in exported[0] and " MB, " in exported[0]
    assert "export" not in runs[1].stderr
    first, second = ([json.loads(line) for line in run.stdout.splitlines()] for run in runs)
    assert [h["id"] for h in first] == [h["id"] for h in second] and len(first) == 5
    for a, b in zip(first, second):
        assert a["score"] == pytest.approx(b["score"], rel=1e-5)
        assert (a["passage"], a["matched"], a["excerpt"]) == (b["passage"], b["matched"], b["excerpt"])
