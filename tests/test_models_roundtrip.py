"""Save/load round trips for every layout, and two-way compatibility with sentence-transformers 6."""

import json
import string

import numpy as np
import pytest
import torch

from conftest import MODELS, REFERENCE_MODELS, probe_texts
from maxsim import Dense, MultiVectorEncoder, MultiVectorMask, Normalize, Transformer
from maxsim.models.default import minilm_folder

QUERIES, DOCUMENTS = probe_texts()


def _max_diff(a, b):
    assert [x.shape for x in a] == [tuple(y.shape) for y in b]
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_every_layout_saves_as_st6_and_loads_back_equal(name, tmp_path):
    original = MultiVectorEncoder(MODELS / name, device="cpu", dtype="float32")
    original.save(tmp_path / "saved")
    reloaded = MultiVectorEncoder(tmp_path / "saved", device="cpu", dtype="float32")
    assert reloaded.layout == "sentence-transformers-6"
    assert json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())["model_type"] \
        == "MultiVectorEncoder"
    assert _max_diff(original.encode_query(QUERIES), reloaded.encode_query(QUERIES)) == 0.0
    assert _max_diff(original.encode_document(DOCUMENTS), reloaded.encode_document(DOCUMENTS)) == 0.0
    assert repr(original) == repr(reloaded)
    # a second save of the reloaded model is byte-identical in its configs
    reloaded.save(tmp_path / "again")
    for rel in ["modules.json", "sentence_bert_config.json", "2_MultiVectorMask/config.json", "1_Dense/config.json"]:
        assert (tmp_path / "saved" / rel).read_text() == (tmp_path / "again" / rel).read_text()


def _minilm_with_projection():
    torch.manual_seed(1234)
    transformer = Transformer.from_pretrained(minilm_folder(), query_length=32, document_length=180,
                                              query_expansion={"strategy": "fixed", "attend": False, "length": 32})
    return MultiVectorEncoder(modules=[transformer, Dense(384, 128), MultiVectorMask(list(string.punctuation)),
                                       Normalize()], prompts={"query": "[Q] ", "document": "[D] "}, device="cpu",
                              dtype="float32")


def test_sentence_transformers_loads_what_we_save(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    ours = _minilm_with_projection()
    ours.save(tmp_path / "ours")
    theirs = st.MultiVectorEncoder(str(tmp_path / "ours"), device="cpu")
    assert _max_diff(ours.encode_query(QUERIES), theirs.encode_query(QUERIES)) <= 1e-5
    assert _max_diff(ours.encode_document(DOCUMENTS), theirs.encode_document(DOCUMENTS)) <= 1e-5


def test_we_load_what_sentence_transformers_saves(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.base.modules import Dense as STDense
    from sentence_transformers.base.modules import Normalize as STNormalize
    from sentence_transformers.base.modules import Transformer as STTransformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask as STMask

    torch.manual_seed(99)
    backbone = STTransformer(str(minilm_folder()), query_length=32, document_length=180,
                             query_expansion={"strategy": "fixed", "attend": False, "length": 32})
    theirs = st.MultiVectorEncoder(modules=[
        backbone, STDense(384, 128, bias=False, activation_function=torch.nn.Identity(),
                          module_input_name="token_embeddings"),
        STMask(skiplist_words=list(string.punctuation)), STNormalize(module_input_name="token_embeddings"),
    ], prompts={"query": "[Q] ", "document": "[D] "}, device="cpu")
    theirs.save(str(tmp_path / "theirs"))
    ours = MultiVectorEncoder(tmp_path / "theirs", device="cpu", dtype="float32")
    assert _max_diff(ours.encode_query(QUERIES), theirs.encode_query(QUERIES)) <= 1e-5
    assert _max_diff(ours.encode_document(DOCUMENTS), theirs.encode_document(DOCUMENTS)) <= 1e-5
    scores_ours = ours.similarity(ours.encode_query(QUERIES), ours.encode_document(DOCUMENTS))
    scores_theirs = theirs.similarity(theirs.encode_query(QUERIES), theirs.encode_document(DOCUMENTS))
    np.testing.assert_allclose(scores_ours, scores_theirs.numpy(), atol=1e-4)


def test_output_formats(tiny_model):
    as_numpy = tiny_model.encode_document(DOCUMENTS[:3])
    as_torch = tiny_model.encode_document(DOCUMENTS[:3], convert_to_tensor=True)
    padded, mask = tiny_model.encode_document(DOCUMENTS[:3], pad=True)
    assert all(isinstance(t, torch.Tensor) for t in as_torch)
    assert padded.shape == (3, max(len(x) for x in as_numpy), tiny_model.dim) and mask.dtype == bool
    for i, x in enumerate(as_numpy):
        np.testing.assert_array_equal(as_torch[i].numpy(), x)
        np.testing.assert_array_equal(padded[i][mask[i]], x)
        assert not padded[i][~mask[i]].any()
    single = tiny_model.encode_query("define extreme")
    np.testing.assert_array_equal(single, tiny_model.encode_query(["define extreme"])[0])


def test_bfloat16_close_to_float32(tmp_path):
    model32 = MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu", dtype="float32")
    model16 = MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu", dtype="bfloat16")
    a, b = model32.encode_document(DOCUMENTS), model16.encode_document(DOCUMENTS)
    assert all(x.dtype == np.float32 for x in b)
    assert 0 < _max_diff(a, b) < 0.25
    model16.save(tmp_path / "m")  # saved in float32 whatever the runtime dtype; the model stays bfloat16
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}
    assert next(model16.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu", dtype="int8")


@pytest.mark.parametrize("expansion", [
    {"strategy": "min", "attend": False, "token": None, "length": 8},
    {"strategy": "fixed", "attend": True, "token": None, "length": 16},
    {"strategy": "fixed", "attend": False, "token": "[unused5]", "length": 24},
    None,
])
def test_query_expansion_variants_match_sentence_transformers(expansion, tmp_path):
    """Every expansion strategy/attend/token setting gives sentence-transformers' own vectors."""
    st = pytest.importorskip("sentence_transformers")
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(MODELS / "st6-tiny-bert", folder)
    config_path = folder / "sentence_bert_config.json"
    config = json.loads(config_path.read_text())
    config["query_expansion"] = expansion
    config_path.chmod(0o644)
    config_path.write_text(json.dumps(config))
    ours = MultiVectorEncoder(folder, device="cpu", dtype="float32").encode_query(QUERIES, batch_size=3)
    theirs = st.MultiVectorEncoder(str(folder), device="cpu").encode_query(QUERIES, batch_size=3)
    assert _max_diff(ours, theirs) <= 1e-5
    if expansion and expansion["strategy"] == "min":  # long queries keep their tokens, short ones reach 8
        assert min(len(q) for q in ours) == 8 and max(len(q) for q in ours) == 32


@pytest.mark.parametrize("mask_config", [
    {"skiplist_words": ["!", ".", "the"], "skiplist_tasks": ["query", "document"], "keep_only_token_ids": None},
    {"skiplist_words": [], "skiplist_tasks": ["document"], "keep_only_token_ids": [101, 102, 1996, 1012]},
])
def test_mask_variants_match_sentence_transformers(mask_config, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(MODELS / "st6-tiny-bert", folder)
    path = folder / "2_MultiVectorMask" / "config.json"
    path.chmod(0o644)
    path.write_text(json.dumps(mask_config))
    ours = MultiVectorEncoder(folder, device="cpu", dtype="float32")
    theirs = st.MultiVectorEncoder(str(folder), device="cpu")
    assert _max_diff(ours.encode_query(QUERIES), theirs.encode_query(QUERIES)) <= 1e-5
    assert _max_diff(ours.encode_document(DOCUMENTS), theirs.encode_document(DOCUMENTS)) <= 1e-5
