"""``SearchOptions``: the arguments of ``Collection.search`` and ``documents``, checked once for every
implementation (a folder and a sharded collection accept and refuse exactly the same)."""

from __future__ import annotations

from dataclasses import dataclass

from maxsim.errors import InvalidInputError, LimitExceededError
from maxsim.index.checks import check_k
from maxsim.search.fusion import FUSION_DEPTH, METHODS
from maxsim.search.inputs import check_ids
from maxsim.search.limits import MAX_LIST

FILTER_EXAMPLE = "{'lang': 'en'}"


@dataclass(frozen=True)
class SearchOptions:
    """``k`` hits per query; ``hybrid``: fuse BM25 (``fusion`` "rrf" or "score"); ``filter``: a metadata
    filter (``maxsim.search.filters``); ``subset``: restrict to these ids."""

    k: int = 10
    hybrid: bool = False
    fusion: str = "rrf"
    filter: dict | None = None
    subset: tuple[str, ...] | None = None

    @classmethod
    def checked(cls, k=10, hybrid=False, fusion="rrf", filter=None, subset=None, lexical: bool = True,
                where=None) -> SearchOptions:
        """Validated options; ``lexical``: whether the collection ``where`` keeps BM25."""
        if hybrid and not lexical:
            raise InvalidInputError(f"{where} keeps no BM25 index: create it with hybrid=True "
                                    "(`maxsim index --hybrid`) to search hybrid.")
        if fusion not in METHODS:
            raise InvalidInputError(f"fusion must be one of {METHODS}, got {fusion!r}.")
        subset = None if subset is None else tuple(check_ids(subset, "subset"))
        return cls(check_k(k), bool(hybrid), fusion, check_filter(filter), subset)

    @property
    def depth(self) -> int:
        """Documents each ranker contributes: ``k``, or at least ``FUSION_DEPTH`` for a fusion."""
        return max(self.k, FUSION_DEPTH) if self.hybrid else self.k


def check_filter(filter) -> dict | None:
    if filter is not None and not isinstance(filter, dict):
        raise InvalidInputError(f"filter must be a dict such as {FILTER_EXAMPLE}, got {type(filter).__name__}.")
    return filter


def check_page(limit, offset) -> tuple[int, int]:
    """``limit`` in 1..MAX_LIST and ``offset`` >= 0, as ints."""
    for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}.")
    if limit > MAX_LIST:
        raise LimitExceededError(f"limit={limit} is above {MAX_LIST}: page through with offset.")
    return limit, offset
