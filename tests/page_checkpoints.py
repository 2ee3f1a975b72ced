"""Random page-retrieval checkpoints built offline with transformers' own classes (ColPali, ColQwen2,
ColModernVBert) and a byte-level BPE tokenizer trained here: for the tests and bench/pages.py.

``build(family, folder, shape)`` saves a transformers ``*ForRetrieval`` folder (weights, config,
processor, tokenizer). ``TINY`` shapes keep a page at 16-20 patch tokens; ``REALISTIC`` shapes
keep the published models' widths and input sizes with fewer layers (see ``describe``).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

FAMILIES = ("colpali", "colqwen2", "colmodernvbert")
ATTENTION_OUTPUT = re.compile(r"(o_proj|out_proj|attn\.proj|attn\.Wo)\.(weight|bias)$")
CORPUS = ["what is the revenue in 2023", "a chart of quarterly sales by region", "the table shows the results",
          "Describe the image.", "Question: where is the figure", "page one of the annual report",
          "Query: total assets and liabilities", "User: Assistant: summary of the findings"] * 4

# widths, depths and image sizes per family; "layers" = text layers, "vision_layers" = vision layers
TINY = {
    "colpali": {"hidden": 32, "intermediate": 64, "heads": 4, "kv_heads": 1, "head_dim": 8, "layers": 2,
                "vision_hidden": 32, "vision_intermediate": 64, "vision_heads": 4, "vision_layers": 2,
                "image_size": 32, "patch": 8, "dim": 16},
    "colqwen2": {"hidden": 32, "intermediate": 64, "heads": 4, "kv_heads": 2, "layers": 2, "vision_hidden": 32,
                 "vision_heads": 4, "vision_layers": 2, "patch": 8, "min_pixels": 16 * 16, "max_pixels": 64 * 64,
                 "dim": 16},
    "colmodernvbert": {"hidden": 32, "intermediate": 64, "heads": 4, "layers": 2, "vision_hidden": 32,
                       "vision_intermediate": 64, "vision_heads": 4, "vision_layers": 2, "crop": 32, "patch": 8,
                       "longest_edge": 64, "shuffle": 2, "dim": 16},
}
# published widths and input sizes (ColPali v1.3: SigLIP-so400m + Gemma-2B; ColQwen2 v1.0: Qwen2-VL-2B;
# ColModernVBert: SigLIP2-base + ModernBERT-base) with 2 vision and 2 text layers
REALISTIC = {
    "colpali": {"hidden": 2048, "intermediate": 16384, "heads": 8, "kv_heads": 1, "head_dim": 256, "layers": 2,
                "vision_hidden": 1152, "vision_intermediate": 4304, "vision_heads": 16, "vision_layers": 2,
                "image_size": 448, "patch": 14, "dim": 128},
    "colqwen2": {"hidden": 1536, "intermediate": 8960, "heads": 12, "kv_heads": 2, "layers": 2, "vision_hidden": 1280,
                 "vision_heads": 16, "vision_layers": 2, "patch": 14, "min_pixels": 4 * 28 * 28,
                 "max_pixels": 768 * 28 * 28, "dim": 128},
    "colmodernvbert": {"hidden": 768, "intermediate": 1152, "heads": 12, "layers": 2, "vision_hidden": 768,
                       "vision_intermediate": 3072, "vision_heads": 12, "vision_layers": 2, "crop": 512, "patch": 16,
                       "longest_edge": 2048, "shuffle": 4, "dim": 128},
}
SHAPES = {"tiny": TINY, "realistic": REALISTIC}


def train_tokenizer(special_tokens: list[str], **names):
    """A byte-level BPE tokenizer trained on CORPUS, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", *special_tokens], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", **names)


def build(family: str, folder: Path, shape: dict | None = None, seed: int = 0, local: bool = False) -> Path:
    """Save a random ``family`` checkpoint (transformers layout) into ``folder``; returns it. ``local``:
    every attention output projection is zero, so each output vector depends on its own token only (an
    image token: on its own patch of the page)."""
    shape = shape or TINY[family]
    model, processor = {"colpali": _colpali, "colqwen2": _colqwen2, "colmodernvbert": _colmodernvbert}[family](
        shape, seed)
    if local:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if ATTENTION_OUTPUT.search(name):
                    parameter.zero_()
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return Path(folder)


def describe(family: str, shape: dict) -> str:
    """One line naming the shapes of a checkpoint built with ``shape``."""
    vision = f"vision {shape['vision_layers']} x {shape['vision_hidden']}"
    text = f"text {shape['layers']} x {shape['hidden']} (FFN {shape['intermediate']})"
    image = {"colpali": f"{shape.get('image_size')}px / {shape['patch']}",
             "colqwen2": f"<= {shape.get('max_pixels')} px / {shape['patch']} merged 2x2",
             "colmodernvbert": f"{shape.get('crop')}px crops / {shape['patch']}, "
                               f"longest edge {shape.get('longest_edge')}"}[family]
    return f"{family}: {vision}, {text}, image {image}, dim {shape['dim']}"


def _seeded(model_class, config, seed: int):
    torch.manual_seed(seed)
    return model_class(config).eval()


def _colpali(shape: dict, seed: int):
    from transformers import ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor, SiglipImageProcessor

    tokenizer = train_tokenizer(["<pad>", "<eos>", "<bos>"], bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    side = shape["image_size"]
    image_processor = SiglipImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3)
    image_processor.image_seq_length = (side // shape["patch"]) ** 2
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    text = {"model_type": "gemma", "vocab_size": len(tokenizer), "hidden_size": shape["hidden"],
            "intermediate_size": shape["intermediate"], "num_hidden_layers": shape["layers"],
            "num_attention_heads": shape["heads"], "num_key_value_heads": shape["kv_heads"],
            "head_dim": shape["head_dim"], **ids}
    vision = {"model_type": "siglip_vision_model", "hidden_size": shape["vision_hidden"],
              "intermediate_size": shape["vision_intermediate"], "num_hidden_layers": shape["vision_layers"],
              "num_attention_heads": shape["vision_heads"], "image_size": side, "patch_size": shape["patch"],
              "projection_dim": shape["hidden"]}
    config = ColPaliConfig(vlm_config={"model_type": "paligemma", "text_config": text, "vision_config": vision,
                                       "image_token_id": processor.image_token_id, "projection_dim": shape["hidden"],
                                       "hidden_size": shape["hidden"], **ids}, embedding_dim=shape["dim"])
    return _seeded(ColPaliForRetrieval, config, seed), processor


def _colqwen2(shape: dict, seed: int):
    from transformers import ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor, Qwen2VLImageProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>"]
    tokenizer = train_tokenizer(specials, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": shape["min_pixels"],
                                                  "longest_edge": shape["max_pixels"]},
                                            patch_size=shape["patch"], merge_size=2, temporal_patch_size=2)
    processor = ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer)
    token = tokenizer.convert_tokens_to_ids
    head_dim = shape["hidden"] // shape["heads"]
    section = [head_dim // 4, head_dim // 8, head_dim // 2 - head_dim // 4 - head_dim // 8]
    text = {"model_type": "qwen2_vl_text", "vocab_size": len(tokenizer), "hidden_size": shape["hidden"],
            "intermediate_size": shape["intermediate"], "num_hidden_layers": shape["layers"],
            "num_attention_heads": shape["heads"], "num_key_value_heads": shape["kv_heads"],
            "bos_token_id": token("<|endoftext|>"), "eos_token_id": token("<|endoftext|>"),
            "rope_parameters": {"rope_type": "default", "mrope_section": section, "rope_theta": 10000.0}}
    vision = {"depth": shape["vision_layers"], "embed_dim": shape["vision_hidden"], "hidden_size": shape["hidden"],
              "num_heads": shape["vision_heads"], "patch_size": shape["patch"], "spatial_merge_size": 2,
              "temporal_patch_size": 2}
    config = ColQwen2Config(vlm_config={
        "model_type": "qwen2_vl", "text_config": text, "vision_config": vision,
        "image_token_id": token("<|image_pad|>"), "video_token_id": token("<|video_pad|>"),
        "vision_start_token_id": token("<|vision_start|>"), "vision_end_token_id": token("<|vision_end|>")},
        embedding_dim=shape["dim"])
    return _seeded(ColQwen2ForRetrieval, config, seed), processor


def _colmodernvbert(shape: dict, seed: int):
    from transformers import (
        ColModernVBertConfig,
        ColModernVBertForRetrieval,
        ColModernVBertProcessor,
        Idefics3ImageProcessor,
    )

    tags = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<pad>", "<|begin_of_text|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                "<global-img>", *tags]
    tokenizer = train_tokenizer(specials, pad_token="<pad>")
    crop = shape["crop"]
    image_processor = Idefics3ImageProcessor(size={"longest_edge": shape["longest_edge"]},
                                             max_image_size={"longest_edge": crop})
    per_crop = (crop // shape["patch"] // shape["shuffle"]) ** 2
    processor = ColModernVBertProcessor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=per_crop)
    pad = tokenizer.pad_token_id
    text = {"model_type": "modernbert", "vocab_size": len(tokenizer), "hidden_size": shape["hidden"],
            "intermediate_size": shape["intermediate"], "num_hidden_layers": shape["layers"],
            "num_attention_heads": shape["heads"], "pad_token_id": pad, "bos_token_id": pad, "eos_token_id": pad,
            "cls_token_id": pad, "sep_token_id": pad, "global_attn_every_n_layers": 1, "local_attention": 128}
    vision = {"model_type": "siglip_vision_model", "hidden_size": shape["vision_hidden"],
              "intermediate_size": shape["vision_intermediate"], "num_hidden_layers": shape["vision_layers"],
              "num_attention_heads": shape["vision_heads"], "image_size": crop, "patch_size": shape["patch"]}
    config = ColModernVBertConfig(vlm_config={"model_type": "modernvbert", "text_config": text, "vision_config": vision,
                                              "image_token_id": tokenizer.convert_tokens_to_ids("<image>"),
                                              "pixel_shuffle_factor": shape["shuffle"]}, embedding_dim=shape["dim"])
    return _seeded(ColModernVBertForRetrieval, config, seed), processor
