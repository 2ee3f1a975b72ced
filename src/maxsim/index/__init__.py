"""On-disk multi-vector indexes: ExactIndex (ground truth) and PlaidIndex (compressed, PLAID search).

Both are crash-safe (atomic manifest commits), lock-protected against concurrent writers and
readable by other processes while a writer writes. ``KINDS`` maps a kind name to its class; the
class's ``params_class`` is its typed parameters (``maxsim.index.params``). See docs/index.md.

A kind's module is imported on first use (``KINDS[kind]``, ``open_index``, ``maxsim.index.PlaidIndex``):
opening an exact index does not load the PLAID kind, nor torch (``maxsim.index.exact``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

from maxsim.errors import InvalidInputError
from maxsim.index.base import Index, Scored
from maxsim.index.defaults import auto_kind, choose_kind, estimate_tokens
from maxsim.index.params import ExactParams, IndexParams, PlaidParams
from maxsim.index.storage import Manifest

_HOMES = {"ExactIndex": "maxsim.index.exact", "PlaidIndex": "maxsim.index.plaid", "ResidualCodec": "maxsim.index.codec"}


class _Kinds(Mapping):
    """Kind name -> index class, its module imported when the class is first asked for."""

    _names = {"exact": "ExactIndex", "plaid": "PlaidIndex"}

    def __getitem__(self, kind: str) -> type[Index]:
        return __getattr__(self._names[kind])

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


KINDS = _Kinds()


def __getattr__(name: str):
    """``ExactIndex``, ``PlaidIndex``, ``ResidualCodec``: imported on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'maxsim.index' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def open_index(folder: str | Path, **kwargs) -> Index:
    """Open the index in ``folder`` whatever its kind (read from its manifest)."""
    body = Manifest.read(Path(folder))
    if body["kind"] not in KINDS:
        raise InvalidInputError(f"{folder}: unknown index kind {body['kind']!r}; known: {sorted(KINDS)}.")
    return KINDS[body["kind"]].open(folder, **kwargs)


__all__ = ["KINDS", "ExactIndex", "ExactParams", "Index", "IndexParams", "PlaidIndex", "PlaidParams",
           "ResidualCodec", "Scored", "auto_kind", "choose_kind", "estimate_tokens", "open_index"]
