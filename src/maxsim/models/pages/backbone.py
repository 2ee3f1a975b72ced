"""The backbone of a page model: a transformers ``*ForRetrieval`` model and its processor.

Queries go through the processor's ``process_queries`` (its query prefix, the text, ten query
augmentation tokens), pages through ``process_images`` (the visual prompt around the image tokens),
with the keyword arguments sentence-transformers 6.2 passes (``padding=True``,
``truncation="longest_first"``, ``max_length=query_length`` for queries). For ColPali and ColQwen2
these are exactly the calls sentence-transformers makes; for ColModernVBert, sentence-transformers
calls the processor itself, which adds neither the visual prompt (pages fail) nor the augmentation
tokens (queries differ from the model's training format); ``process_*`` add both, as colpali-engine
and transformers' own examples do.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from maxsim.errors import ModelLoadError
from maxsim.models.modules.base import Module, write_json
from maxsim.models.modules.transformer import Transformer
from maxsim.models.pages.layout import ARCHITECTURES

MODALITY_CONFIG = {"text": {"method": "forward", "method_output_name": "embeddings"},
                   "image": {"method": "forward", "method_output_name": "embeddings"}}
COMMON = {"return_tensors": "pt"}


class RetrievalBackbone(Module):
    """``forward`` adds ``token_embeddings`` (B, T, dim): the model's projected, L2-normalised token
    vectors, zero at padding. ``family``: "colpali", "colqwen2" or "colmodernvbert"."""

    st_type = Transformer.st_type

    def __init__(self, model: transformers.PreTrainedModel, processor, family: str, query_length: int | None = None):
        super().__init__()
        self.auto_model, self.processor, self.family, self.query_length = model, processor, family, query_length

    @classmethod
    def from_pretrained(cls, folder: Path, family: str, query_length: int | None = None,
                        trust_remote_code: bool = False, layout: str = "transformers") -> RetrievalBackbone:
        """Processor and float32 model of a transformers ``*ForRetrieval`` folder, or of a
        colpali-engine checkpoint (``layout="colpali-engine"``)."""
        from maxsim.models.pages.colpali_engine import engine_processor, load_engine_model

        model_class = getattr(transformers, ARCHITECTURES[family])
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            if layout == "colpali-engine":
                processor, model = engine_processor(folder, family), load_engine_model(folder, family)
            else:
                processor = transformers.AutoProcessor.from_pretrained(str(folder),
                                                                       trust_remote_code=trust_remote_code)
                model = model_class.from_pretrained(str(folder), dtype=torch.float32,
                                                    trust_remote_code=trust_remote_code)
        except ModelLoadError:
            raise
        except Exception as exc:  # transformers, safetensors and tokenizers raise many types
            raise ModelLoadError(f"could not load the page model in {folder}: {type(exc).__name__}: {exc}") from None
        finally:
            transformers.logging.set_verbosity(verbosity)
        return cls(model, processor, family, query_length)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def image_token_id(self) -> int:
        return int(self.processor.image_token_id)

    @property
    def dim(self) -> int:
        return int(self.auto_model.config.embedding_dim)

    def prepare_queries(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Query texts (prompts already prepended) -> padded model inputs."""
        text = {"padding": True, "truncation": "longest_first"}
        if self.query_length:
            text["max_length"] = self.query_length
        return dict(self.processor.process_queries(texts, text_kwargs=text, common_kwargs=COMMON))

    def prepare_images(self, images: list) -> dict[str, torch.Tensor]:
        """RGB PIL images -> padded model inputs (``input_ids``, ``attention_mask``, pixel tensors)."""
        text = {"padding": True, "truncation": "longest_first"}
        return dict(self.processor.process_images(images, text_kwargs=text, images_kwargs={}, common_kwargs=COMMON))

    def forward(self, features: dict, task: str | None = None) -> dict:
        dtype = next(self.auto_model.parameters()).dtype
        inputs = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in features.items()}
        features["token_embeddings"] = self.auto_model(**inputs, return_dict=True).embeddings
        return features

    def get_config(self) -> dict:
        """``sentence_bert_config.json`` as sentence-transformers 6 writes it for a retrieval model."""
        config = {"transformer_task": "retrieval", "modality_config": MODALITY_CONFIG,
                  "module_output_name": "token_embeddings"}
        return {**config, "query_length": self.query_length} if self.query_length else config

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.auto_model.save_pretrained(str(folder), safe_serialization=True)
        self.processor.save_pretrained(str(folder))
        write_json(folder / "sentence_bert_config.json", self.get_config())
