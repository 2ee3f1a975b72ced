"""Typed parameters of the index kinds: one frozen dataclass per kind, validated on creation.

``to_dict`` is what an index's manifest stores, ``from_dict`` reads it back (unknown keys are
refused, missing ones take their defaults); every field has its default, unit and a one-line
``help`` in its metadata, so a command line can generate its flags from ``dataclasses.fields``.
No parameter is a file path: a trained codec is handed to a new index as an object
(``PlaidIndex.create(..., codec=ResidualCodec)``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

from maxsim.errors import InvalidInputError

TERNARY = "ternary"
NBITS = (1, TERNARY, 2, 4)
SEARCH_KEYS = ("n_ivf_probe", "centroid_score_threshold", "n_full_scores")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class IndexParams(Mapping):
    """Common behaviour: type checks per field on creation, ``to_dict`` / ``from_dict``; read like
    the dict a manifest stores (``params["nbits"]``, ``dict(params)``)."""

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f.name, getattr(self, f.name), hints[f.name]))
        self.check()

    def check(self) -> None:
        """Kind-specific range checks (raise InvalidInputError naming the field)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None):
        """Parameters from a dict (a manifest's, or keyword arguments); unknown keys raise."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def __getitem__(self, name: str):
        if name not in self._names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class ExactParams(IndexParams):
    """``ExactIndex``: every token vector stored and scanned."""

    dtype: str = _help("storage of each value: float16 (2 bytes) or float32 (4 bytes)", "float16")
    chunk_tokens: int = _help("token vectors scanned per block at most (a memory bound, in vectors)", 1 << 18)

    def check(self) -> None:
        if self.dtype not in ("float16", "float32"):
            raise InvalidInputError(f"dtype must be 'float16' or 'float32', got {self.dtype!r}.")
        _positive(self, "chunk_tokens")


@dataclass(frozen=True)
class PlaidParams(IndexParams):
    """``PlaidIndex``: centroid id + residual codes per token, PLAID search ranked from the codes."""

    nbits: int | str = _help("residual codec: 1, 2 or 4 bits per dimension (product quantized, one byte per "
                             "8, 4 or 2 dimensions) or 'ternary' (1.58 bits: -w/0/+w, 5 dimensions per byte)", 2)
    n_centroids: int | None = _help("k-means centroids (None: 2^floor(log2(8 sqrt(tokens))), at most 8,192)", None)
    kmeans_niters: int = _help("k-means iterations", 4)
    max_points_per_centroid: int = _help("k-means training sample: at most this many token vectors per "
                                         "centroid", 128)
    n_ivf_probe: int | None = _help("search: inverted lists probed per query vector (None: from the "
                                    "collection size)", None)
    centroid_score_threshold: float | None = _help("search: centroid score (inner product) from which a "
                                                   "centroid counts in stage 2 (None: 0.45)", None)
    n_full_scores: int | None = _help("search: documents ranked from their codes (None: from k and the "
                                      "collection size)", None)
    drift_bound: float = _help("re-cluster when the residual error of added tokens exceeds this multiple "
                               "of the training one", 1.5)
    seed: int = _help("seed of the k-means and codebook samples", 0)
    rescore: str | None = _help("'float16': also keep a float16 copy of every token (2 x dim bytes per "
                                "token) and rank the final candidates on it; None: rank from the codes", None)
    first_stage: str = _help("what proposes the candidates: 'ivf' (the inverted file of centroids)", "ivf")

    def __post_init__(self) -> None:
        if isinstance(self.nbits, str) and self.nbits.isdigit():  # from a command line
            object.__setattr__(self, "nbits", int(self.nbits))
        super().__post_init__()

    def check(self) -> None:
        if self.nbits not in NBITS:
            raise InvalidInputError(f"nbits must be 1, 2, 4 or 'ternary', got {self.nbits!r}.")
        for name in ("n_centroids", "kmeans_niters", "max_points_per_centroid", "n_ivf_probe", "n_full_scores"):
            _positive(self, name)
        if self.centroid_score_threshold is not None and math.isnan(self.centroid_score_threshold):
            raise InvalidInputError("centroid_score_threshold must be a number or None, got nan.")
        if self.drift_bound <= 1.0:
            raise InvalidInputError(f"drift_bound must be greater than 1, got {self.drift_bound!r}.")
        if self.rescore not in (None, "float16"):
            raise InvalidInputError(f"rescore must be 'float16' (keep a float16 copy to re-rank with) or None, "
                                    f"got {self.rescore!r}.")
        from maxsim.index.plaid import FIRST_STAGES
        if self.first_stage not in FIRST_STAGES:
            raise InvalidInputError(f"first_stage must be one of {sorted(FIRST_STAGES)}, got {self.first_stage!r}.")

    def search_settings(self, **given) -> dict:
        """The three search settings: those given (not None), else the stored ones (None: automatic)."""
        return {key: given.get(key) if given.get(key) is not None else getattr(self, key) for key in SEARCH_KEYS}


def check_search_settings(settings: dict) -> None:
    """Search settings given to ``search``: checked as the fields of ``PlaidParams``."""
    PlaidParams(**{key: settings.get(key) for key in SEARCH_KEYS})


_type_hints = functools.cache(typing.get_type_hints)  # (evaluating the annotations compiles code)


def _positive(params: IndexParams, name: str) -> None:
    value = getattr(params, name)
    if value is not None and value < 1:
        raise InvalidInputError(f"{name} must be a positive integer{' or None' if name.startswith('n_') else ''}, "
                                f"got {value!r}.")


def _checked(name: str, value, hint):
    """``value`` as the annotated type (numpy numbers as Python ones, an integer for a float; never
    a bool for a number), else InvalidInputError naming the field."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    for kind in allowed:
        if kind is type(None) and value is None or kind is str and isinstance(value, str):
            return value
        if kind is int and number and isinstance(value, numbers.Integral):
            return int(value)
        if kind is float and number:
            return float(value)
    names = " or ".join("None" if k is type(None) else k.__name__ for k in allowed)
    raise InvalidInputError(f"{name} must be {names}, got {value!r}.")
