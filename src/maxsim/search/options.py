"""``SearchOptions``: the arguments of ``Collection.search`` and ``documents``, checked once for every
implementation (a folder and a sharded collection accept and refuse exactly the same)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from maxsim.errors import InvalidInputError, LimitExceededError
from maxsim.index.checks import check_k
from maxsim.search.fusion import FUSION_DEPTH, check_fusion
from maxsim.search.inputs import check_ids
from maxsim.search.limits import MAX_LIST
from maxsim.search.prf import PRF

FILTER_EXAMPLE = "{'lang': 'en'}"


@dataclass(frozen=True)
class SearchOptions:
    """``k`` hits per query; ``hybrid``: fuse BM25 (``fusion`` "rrf", "convex" with dense weight
    ``alpha``, or "score"; ``maxsim.search.fusion``); ``filter``: a metadata filter
    (``maxsim.search.filters``); ``subset``: restrict to these ids; ``prf``: ColBERT-PRF
    (``maxsim.search.prf.PRF``) or None."""

    k: int = 10
    hybrid: bool = False
    fusion: str = "rrf"
    filter: dict | None = None
    subset: tuple[str, ...] | None = None
    prf: PRF | None = None
    alpha: float | None = None

    @classmethod
    def checked(cls, k=10, hybrid=False, fusion="rrf", filter=None, subset=None, prf=None, alpha=None,
                lexical: bool = True, where=None) -> SearchOptions:
        """Validated options; ``lexical``: whether the collection ``where`` keeps BM25 (hybrid search
        and PRF's weights need it). ``prf``: None/False, True (the defaults), a dict or a ``PRF``."""
        prf = PRF.of(prf)
        if (hybrid or prf) and not lexical:
            raise InvalidInputError(f"{where} keeps no BM25 index: create it with hybrid=True "
                                    "(`maxsim index --hybrid`) to search hybrid or with prf (its weights are "
                                    "BM25's idf).")
        check_fusion(fusion, alpha)
        subset = None if subset is None else tuple(check_ids(subset, "subset"))
        return cls(check_k(k), bool(hybrid), fusion, check_filter(filter), subset, prf, alpha)

    def first_pass(self) -> SearchOptions:
        """The options of PRF's feedback search: the ``fb_docs`` best documents, no expansion."""
        return replace(self, k=self.prf.fb_docs, prf=None)

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
