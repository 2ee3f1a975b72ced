"""On-disk multi-vector indexes: ExactIndex (ground truth) and PlaidIndex (compressed, PLAID search).

Both are crash-safe (atomic manifest commits), lock-protected against concurrent writers and
readable by other processes while a writer writes. ``KINDS`` maps a kind name to its class; the
class's ``params_class`` is its typed parameters (``maxsim.index.params``). See docs/index.md.
"""

from __future__ import annotations

from pathlib import Path

from maxsim.errors import InvalidInputError
from maxsim.index.base import Index, Scored
from maxsim.index.codec import ResidualCodec
from maxsim.index.defaults import auto_kind, choose_kind, estimate_tokens
from maxsim.index.exact import ExactIndex
from maxsim.index.params import ExactParams, IndexParams, PlaidParams
from maxsim.index.plaid import PlaidIndex
from maxsim.index.storage import Manifest

KINDS = {"exact": ExactIndex, "plaid": PlaidIndex}


def open_index(folder: str | Path, **kwargs) -> Index:
    """Open the index in ``folder`` whatever its kind (read from its manifest)."""
    body = Manifest.read(Path(folder))
    try:
        cls = KINDS[body["kind"]]
    except KeyError:
        raise InvalidInputError(f"{folder}: unknown index kind {body['kind']!r}; known: {sorted(KINDS)}.") from None
    return cls.open(folder, **kwargs)


__all__ = ["KINDS", "ExactIndex", "ExactParams", "Index", "IndexParams", "PlaidIndex", "PlaidParams",
           "ResidualCodec", "Scored", "auto_kind", "choose_kind", "estimate_tokens", "open_index"]
