"""Bad input and bad model folders give clear errors naming the item; nothing runs untrusted code."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import MODELS, probe_texts
from maxsim import ModelLoadError, MultiVectorEncoder

QUERIES, DOCUMENTS = probe_texts()


def _copy(name, tmp_path):
    target = tmp_path / name
    shutil.copytree(MODELS / name, target)
    for path in target.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def test_empty_inputs(tiny_model):
    assert tiny_model.encode_query([]) == []
    emb, mask = tiny_model.encode_document([], pad=True)
    assert emb.shape == (0, 0, tiny_model.dim) and mask.shape == (0, 0)
    assert tiny_model.similarity([], tiny_model.encode_document(["x"])).shape == (0, 1)


def test_empty_string_gives_marker_vectors(tiny_model):
    doc = tiny_model.encode_document([""])[0]
    query = tiny_model.encode_query([""])[0]
    # [CLS] "[D]" [SEP] with the brackets skipped as punctuation: CLS, "d", SEP
    assert doc.shape == (3, tiny_model.dim) and np.isfinite(doc).all()
    assert query.shape == (32, tiny_model.dim) and np.isfinite(query).all()


@pytest.mark.parametrize("bad,position", [(["ok", None], 1), ([3.0], 0), (["a", "b", b"bytes"], 2)])
def test_non_string_names_position(tiny_model, bad, position):
    with pytest.raises(TypeError, match=rf"texts\[{position}\]"):
        tiny_model.encode_document(bad)


def test_generator_and_tuple_inputs(tiny_model):
    expected = tiny_model.encode_document(["a b", "c"])
    for texts in (("a b", "c"), (t for t in ["a b", "c"])):
        got = tiny_model.encode_document(texts)
        assert all(np.array_equal(x, y) for x, y in zip(got, expected))


def test_bad_arguments(tiny_model):
    with pytest.raises(ValueError, match="batch_size"):
        tiny_model.encode_query(["x"], batch_size=0)
    with pytest.raises(ValueError, match="task"):
        tiny_model.encode(["x"], task="passage")
    with pytest.raises(TypeError, match="list of strings"):
        tiny_model.encode_document(None)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        MultiVectorEncoder(tmp_path / "nope")


def test_missing_file_names_it(tmp_path):
    folder = _copy("st6-tiny-bert", tmp_path)
    (folder / "1_Dense" / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="1_Dense"):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")


def test_corrupt_json_names_file(tmp_path):
    folder = _copy("st6-tiny-bert", tmp_path)
    (folder / "modules.json").write_text("[{not json")
    with pytest.raises(ModelLoadError, match="modules.json"):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")


def test_truncated_weights_name_file(tmp_path):
    folder = _copy("st6-tiny-bert", tmp_path)
    path = folder / "1_Dense" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")


def test_truncated_backbone_names_folder(tmp_path):
    folder = _copy("st6-tiny-bert", tmp_path)
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=str(folder)):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")


@pytest.mark.parametrize("escape", ["../outside", "/etc", "1_Dense/../../x"])
def test_module_paths_escaping_folder_are_refused(tmp_path, escape):
    folder = _copy("st6-tiny-bert", tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["path"] = escape
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="escapes the model folder"):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")


def _stanford_as_pickle(tmp_path):
    folder = _copy("stanford-tiny-bert", tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_stanford_pickle_checkpoint_loads_through_weights_only(tmp_path):
    folder = _stanford_as_pickle(tmp_path)
    reference = np.load(MODELS / "stanford-tiny-bert.reference.npz")
    docs = MultiVectorEncoder(folder, device="cpu", dtype="float32").encode_document(DOCUMENTS)
    for i, d in enumerate(docs):
        np.testing.assert_allclose(d, reference[f"document_{i}"], atol=1e-5)


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    folder = _stanford_as_pickle(tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["evil"] = _Exploit(marker)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")
    assert not marker.exists()


def test_remote_code_is_off_by_default(tmp_path):
    folder = _copy("st6-tiny-bert", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "remote_code_ran"
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    model = MultiVectorEncoder(folder, device="cpu", dtype="float32")  # the built-in BERT class, not the repo's code
    assert type(model.transformer.auto_model).__name__ == "BertModel"
    assert not marker.exists()


LOAD = ("from maxsim import MultiVectorEncoder\n"
        "MultiVectorEncoder('org-that-does-not-exist/model', cache_folder={cache!r})\n")


def test_unreachable_hub_fails_fast(tmp_path):
    """The hub is a local port that accepts connections and never answers: loading a hub id gives up on
    the hub's timeouts with a ModelLoadError naming the id (a hang is caught by the subprocess timeout)."""
    silent, held = socket.socket(), []
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)

    def hold_connections():
        with contextlib.suppress(OSError):  # closed at the end
            while True:
                held.append(silent.accept()[0])

    threading.Thread(target=hold_connections, daemon=True).start()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}", "HF_HUB_OFFLINE": "0",
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_DISABLE_TELEMETRY": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", LOAD.format(cache=str(tmp_path))], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        silent.close()
    assert done.returncode != 0 and "ModelLoadError" in done.stderr, done.stderr[-2000:]
    assert "org-that-does-not-exist/model" in done.stderr
    assert held, "no connection to the hub was tried"


def test_unsupported_module_type_is_named(tmp_path):
    folder = _copy("st6-tiny-bert", tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules[2]["type"] = "my_package.FancyPooling"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="my_package.FancyPooling"):
        MultiVectorEncoder(folder, device="cpu", dtype="float32")
