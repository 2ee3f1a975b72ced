"""colpali-engine's layout (merged checkpoints and peft LoRA adapters), written here the way colpali-engine
0.3.18 writes it (weight names, config), read into the transformers-native classes: vectors equal the
transformers model's, with the LoRA delta merged."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file

from maxsim import ModelLoadError
from maxsim.models.pages import PageEncoder, page_family
from page_checkpoints import build

# transformers-native names -> colpali-engine's saved names
ENGINE_NAMES = {
    "colpali": [(r"^vlm\.language_model\.", "model.language_model.model."), (r"^vlm\.", "model.")],
    "colqwen2": [(r"^vlm\.language_model\.", "model."), (r"^vlm\.", "")],
    "colmodernvbert": [(r"^vlm\.text_model\.", "base_model.model.model.text_model."), (r"^vlm\.", "model.")],
}
ENGINE_ARCHITECTURE = {"colpali": "ColPali", "colqwen2": "ColQwen2", "colmodernvbert": "ColModernVBert"}
TEXTS = ["where is the revenue table", "chart"]


def engine_name(name: str, family: str) -> str:
    if name.startswith("embedding_proj_layer."):
        return name.replace("embedding_proj_layer.", "custom_text_proj.")
    for pattern, replacement in ENGINE_NAMES[family]:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


def native_state(native) -> dict:
    """The in-memory weight names of the native model (its files hold transformers' legacy names)."""
    model_class = getattr(transformers, json.loads((native / "config.json").read_text())["architectures"][0])
    return {k: v.detach().clone() for k, v in model_class.from_pretrained(str(native)).state_dict().items()}


def write_engine_checkpoint(native, folder, family):
    """A merged colpali-engine checkpoint of the native model folder ``native``."""
    folder.mkdir()
    state = native_state(native)
    save_file({engine_name(k, family): v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    config = json.loads((native / "config.json").read_text())["vlm_config"]
    (folder / "config.json").write_text(json.dumps({**config, "architectures": [ENGINE_ARCHITECTURE[family]]}))
    processor = transformers.AutoProcessor.from_pretrained(str(native))
    processor.image_processor.save_pretrained(str(folder))  # preprocessor_config.json, as colpali-engine ships
    processor.tokenizer.save_pretrained(str(folder))


def images():
    rng = np.random.default_rng(5)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in [(40, 30), (90, 35)]]


@pytest.fixture(scope="module")
def native_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    return {family: build(family, root / family) for family in ENGINE_ARCHITECTURE}


@pytest.mark.parametrize("family", list(ENGINE_ARCHITECTURE))
def test_a_merged_colpali_engine_checkpoint_gives_the_native_vectors(family, native_models, tmp_path):
    write_engine_checkpoint(native_models[family], tmp_path / "engine", family)
    assert page_family(tmp_path / "engine") == family
    ours = PageEncoder(tmp_path / "engine", device="cpu", dtype="float32")
    native = PageEncoder(native_models[family], device="cpu", dtype="float32")
    assert ours.layout == "colpali-engine" and ours.dim == native.dim
    for a, b in zip(ours.encode_document(images()), native.encode_document(images())):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ours.encode_query(TEXTS), native.encode_query(TEXTS)):
        np.testing.assert_array_equal(a, b)


def test_a_lora_adapter_is_merged_into_its_base(native_models, tmp_path):
    family = "colpali"
    write_engine_checkpoint(native_models[family], tmp_path / "base", family)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name in ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / "base" / name, adapter)
    rank, alpha = 4, 8
    targets = ["vlm.language_model.layers.0.self_attn.q_proj", "vlm.language_model.layers.1.mlp.down_proj"]
    state = native_state(native_models[family])
    torch.manual_seed(0)
    lora, merged = {}, dict(state)
    for target in targets:
        out_features, in_features = state[target + ".weight"].shape
        down, up = torch.randn(rank, in_features), torch.randn(out_features, rank) * 0.2
        prefix = "base_model.model." + engine_name(target + ".weight", family)[: -len(".weight")]
        lora[prefix + ".lora_A.weight"], lora[prefix + ".lora_B.weight"] = down, up
        merged[target + ".weight"] = state[target + ".weight"] + up @ down * (alpha / rank)
    projection = torch.randn_like(state["embedding_proj_layer.weight"])  # peft's modules_to_save
    lora["base_model.model.custom_text_proj.weight"] = merged["embedding_proj_layer.weight"] = projection
    save_file(lora, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": str(tmp_path / "base"), "peft_type": "LORA", "r": rank, "lora_alpha": alpha,
        "target_modules": targets}))
    expected = tmp_path / "expected"
    shutil.copytree(native_models[family], expected)
    model = transformers.ColPaliForRetrieval.from_pretrained(str(native_models[family]))
    model.load_state_dict(merged)
    model.save_pretrained(str(expected))

    ours = PageEncoder(adapter, device="cpu", dtype="float32")
    reference = PageEncoder(expected, device="cpu", dtype="float32")
    assert ours.layout == "colpali-engine"
    for a, b in zip(ours.encode_document(images()), reference.encode_document(images())):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(ours.encode_query(TEXTS), reference.encode_query(TEXTS)):
        np.testing.assert_allclose(a, b, atol=1e-5)

    (adapter / "adapter_config.json").write_text(json.dumps({
        "base_model_name_or_path": str(tmp_path / "base"), "r": rank, "use_dora": True}))
    with pytest.raises(ModelLoadError, match="DoRA"):
        PageEncoder(adapter, device="cpu")


def test_weights_of_another_family_are_refused(native_models, tmp_path):
    write_engine_checkpoint(native_models["colpali"], tmp_path / "engine", "colpali")
    config = json.loads((tmp_path / "engine" / "config.json").read_text())
    (tmp_path / "engine" / "config.json").write_text(json.dumps({**config, "architectures": ["ColModernVBert"]}))
    with pytest.raises(ModelLoadError, match="engine"):
        PageEncoder(tmp_path / "engine", device="cpu")


def test_a_colpali_engine_checkpoint_saves_as_sentence_transformers_reads_it(native_models, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    write_engine_checkpoint(native_models["colpali"], tmp_path / "engine", "colpali")
    ours = PageEncoder(tmp_path / "engine", device="cpu", dtype="float32")
    ours.save(tmp_path / "saved")
    theirs = st.MultiVectorEncoder(str(tmp_path / "saved"), device="cpu")
    for a, b in zip(ours.encode_document(images()), theirs.encode_document(images())):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)
    for a, b in zip(ours.encode_query(TEXTS), theirs.encode_query(TEXTS)):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-5)
