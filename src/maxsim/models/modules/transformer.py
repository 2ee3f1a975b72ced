"""The backbone: tokenizer, per-task lengths, query expansion, Hugging Face encoder forward."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import AddedToken

from maxsim.errors import InvalidInputError, ModelLoadError
from maxsim.models.modules.base import Module, write_json

logger = logging.getLogger(__name__)

EXPANSION_KEYS = {"strategy", "attend", "token", "length"}


def normalize_expansion(expansion: dict | None) -> dict | None:
    """Validate a query-expansion dict ``{strategy: fixed|min, attend, token, length}``; fill defaults."""
    if expansion is None:
        return None
    if not isinstance(expansion, dict):
        raise InvalidInputError(f"query_expansion must be a dict or None, got {type(expansion).__name__}.")
    unknown = set(expansion) - EXPANSION_KEYS
    if unknown:
        raise InvalidInputError(f"query_expansion has unknown keys {sorted(unknown)}; "
                                f"allowed: {sorted(EXPANSION_KEYS)}.")
    strategy = expansion.get("strategy", "fixed")
    if strategy not in ("fixed", "min"):
        raise InvalidInputError(f"query_expansion['strategy'] must be 'fixed' or 'min', got {strategy!r}.")
    length = expansion.get("length")
    if not isinstance(length, int) or length <= 0:
        raise InvalidInputError("query_expansion['length'] must be a positive int (classic ColBERT: 32), "
                                f"got {length!r}.")
    return {"strategy": strategy, "attend": bool(expansion.get("attend", False)),
            "token": expansion.get("token"), "length": length}


class Transformer(Module):
    """Wraps a Hugging Face encoder (BERT, ModernBERT, ...) and its tokenizer.

    ``tokenize`` turns texts into unpadded id lists truncated per task (``query_length`` /
    ``document_length``, or the expansion length for ``fixed`` expansion); ``collate`` pads a
    batch and applies query expansion: pad positions below ``length`` become ``token``
    (default: the tokenizer's mask token), flagged in ``expansion_positions`` (B, T) bool, and
    attended to only when ``attend``. ``forward`` adds ``token_embeddings`` (B, T, hidden).
    """

    config_keys = ("query_length", "document_length", "query_expansion")
    st_type = "sentence_transformers.base.modules.transformer.Transformer"

    def __init__(self, model: transformers.PreTrainedModel, tokenizer, query_length: int | None = None,
                 document_length: int | None = None, query_expansion: dict | None = None):
        super().__init__()
        self.auto_model = model
        self.tokenizer = tokenizer
        self.query_length = query_length
        self.document_length = document_length
        self.query_expansion = normalize_expansion(query_expansion)
        if self.query_expansion and self.query_expansion["strategy"] == "min" and query_length is not None \
                and query_length < self.query_expansion["length"]:
            raise InvalidInputError(f"query_length={query_length} is below query_expansion length "
                             f"{self.query_expansion['length']}: raise query_length or lower the length.")
        self.max_positions = self._max_positions()
        self.expansion_id = self._expansion_token_id()
        # a fast tokenizer keeps its truncation length as state: calls that truncate hold this lock, or a
        # query truncated at the query length could be cut at a document's length by another thread
        self.tokenizer_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, folder: str | Path, prefix_tokens: list[str] = (), trust_remote_code: bool = False,
                        **config) -> Transformer:
        """Load backbone and tokenizer from a local folder; ``prefix_tokens`` are registered as
        non-normalised special tokens so a marker such as ``[unused0]`` stays one token."""
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise ModelLoadError(f"{folder / 'config.json'} is missing: not a Hugging Face model folder.")
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # Stanford's inline linear.weight is expected extra
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
            model = transformers.AutoModel.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        except Exception as exc:  # transformers, safetensors and pickle raise many types
            raise ModelLoadError(f"could not load the backbone from {folder}: {type(exc).__name__}: {exc}") from None
        finally:
            transformers.logging.set_verbosity(verbosity)
        register_prefix_tokens(tokenizer, prefix_tokens)
        return cls(model, tokenizer, **config)

    # -- preprocessing ---------------------------------------------------------------------
    def max_length(self, task: str | None) -> int:
        """Token budget (special tokens included) of one text for ``task``."""
        expansion = self.query_expansion if task == "query" else None
        if expansion and expansion["strategy"] == "fixed":
            return expansion["length"]
        length = self.query_length if task == "query" else self.document_length
        return min(length or self.max_positions, self.max_positions)

    def tokenize(self, texts: list[str], task: str | None) -> list[list[int]]:
        """Texts (prompts already prepended) -> unpadded, truncated token id lists."""
        with self.tokenizer_lock:
            encoded = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self.max_length(task),
                                     return_attention_mask=False, return_token_type_ids=False)
        return encoded["input_ids"]

    def collate(self, ids: list[list[int]], task: str | None) -> dict[str, torch.Tensor]:
        """Pad id lists to ``input_ids`` / ``attention_mask`` (B, T) int64 and apply query expansion."""
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        expansion = self.query_expansion if task == "query" else None
        width = int(lengths.max()) if len(ids) else 0
        if expansion:
            width = max(width, expansion["length"])
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
        positions = np.arange(width)
        attention = positions[None, :] < lengths[:, None]
        features = {"input_ids": torch.from_numpy(input_ids)}
        if expansion:
            expanded = ~attention & (positions[None, :] < expansion["length"])
            input_ids[expanded] = self.expansion_id
            if expansion["attend"]:
                attention = attention | expanded
            features["expansion_positions"] = torch.from_numpy(expanded)
        features["attention_mask"] = torch.from_numpy(attention.astype(np.int64))
        return features

    def forward(self, features: dict, task: str | None = None) -> dict:
        out = self.auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                              return_dict=True)
        features["token_embeddings"] = out.last_hidden_state
        return features

    # -- persistence -------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "query_length": self.query_length,
            "document_length": self.document_length,
            "query_expansion": self.query_expansion,
        }

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.auto_model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
        write_json(folder / "sentence_bert_config.json", self.get_config())

    @property
    def hidden_size(self) -> int:
        return int(self.auto_model.config.hidden_size)

    def _max_positions(self) -> int:
        limits = [getattr(self.auto_model.config, "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None)]
        limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
        return min(limits) if limits else 512

    def _expansion_token_id(self) -> int | None:
        if not self.query_expansion:
            return None
        token = self.query_expansion["token"]
        if token is None:
            token_id = self.tokenizer.mask_token_id
            if token_id is None:
                token_id = self.tokenizer.eos_token_id
            if token_id is None:
                raise InvalidInputError("query expansion needs a token: this tokenizer has no mask or eos token; "
                                 "set query_expansion['token'].")
            return token_id
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == self.tokenizer.unk_token_id and token != self.tokenizer.unk_token):
            raise InvalidInputError(f"query_expansion token {token!r} is not in the tokenizer's vocabulary.")
        return token_id


def register_prefix_tokens(tokenizer, prefixes) -> None:
    """Make a marker the tokenizer knows (``[unused0]``, PyLate's added ``"[Q] "``) tokenize as one
    piece when prepended as text, as the checkpoint was trained with. Unknown markers (``[Q]`` on a
    plain BERT vocabulary) stay ordinary text: nothing is added to the embedding table."""
    vocab = tokenizer.get_vocab()
    new_tokens = []
    for value in prefixes:
        if not value or not value.split():
            continue
        for candidate in (value, value.split(None, 1)[0]):
            if candidate in vocab:
                if tokenizer.tokenize(candidate) != [candidate]:
                    new_tokens.append(AddedToken(candidate, normalized=False, special=True))
                break
    if new_tokens:
        tokenizer.add_tokens(new_tokens, special_tokens=True)
