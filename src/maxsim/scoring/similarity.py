"""The similarity a checkpoint names (``similarity_fn_name``) -> how maxsim scores, or a refusal.

sentence-transformers 6 scores a ``MultiVectorEncoder`` with ``maxsim`` or ``meanmaxsim`` (MaxSim
divided by the query's number of vectors). A saved name it does not support as a model-level
similarity (PyLate's ``"MaxSim"``, the single-vector ``cosine`` / ``dot`` / ``euclidean`` /
``manhattan`` left by older saves) is ignored there: the model scores with MaxSim, and so does
maxsim (with a warning for the single-vector names). Stanford ColBERT's ``similarity: cosine`` is
MaxSim on normalised vectors. Anything else (``xtr``, Stanford's ``l2``, unknown names) is refused.
"""

from __future__ import annotations

import logging

import numpy as np

from maxsim.errors import InvalidInputError
from maxsim.scoring.maxsim import as_tensor_list, maxsim, maxsim_pairwise

logger = logging.getLogger(__name__)

SIMILARITIES = ("maxsim", "meanmaxsim")
READ_AS_MAXSIM = {None: False, "maxsim": False, "MaxSim": False, "cosine": True, "dot": True,
                  "dot_product": True, "euclidean": True, "manhattan": True}  # name -> warn


def resolve_similarity(name, source: str) -> str:
    """A saved ``similarity_fn_name`` (``source`` names the file) -> "maxsim" or "meanmaxsim"."""
    if name in SIMILARITIES:
        return name
    if isinstance(name, (str, type(None))) and name in READ_AS_MAXSIM:
        if READ_AS_MAXSIM[name]:
            logger.warning("%s: similarity_fn_name %r is a single-vector similarity; this multi-vector model "
                           "scores with MaxSim, as sentence-transformers does.", source, name)
        return "maxsim"
    raise InvalidInputError(f"{source}: similarity {name!r} is not supported; maxsim scores 'maxsim' and "
                            "'meanmaxsim' (MaxSim divided by the query's vector count). Set similarity_fn_name "
                            "to one of them if the model was trained with it.")


def similarity(queries, documents, name: str = "maxsim") -> np.ndarray:
    """(Nq, Nd) float32 scores of the similarity ``name`` ("maxsim" or "meanmaxsim")."""
    scores = maxsim(queries, documents)
    return scores / query_counts(queries, name)[:, None] if name == "meanmaxsim" else scores


def similarity_pairwise(queries, documents, name: str = "maxsim") -> np.ndarray:
    """(n,) float32 scores of ``queries[i]`` with ``documents[i]``."""
    scores = maxsim_pairwise(queries, documents)
    return scores / query_counts(queries, name) if name == "meanmaxsim" else scores


def query_counts(queries, name: str) -> np.ndarray:
    """(Nq,) float32 vector counts (at least 1), the meanmaxsim divisors; checks ``name``."""
    if name not in SIMILARITIES:
        raise InvalidInputError(f"similarity {name!r} is not supported; use one of {list(SIMILARITIES)}.")
    return np.array([max(len(q), 1) for q in as_tensor_list(queries, "queries")], dtype=np.float32)
