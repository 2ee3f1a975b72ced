"""Rules fitted on measurements: PLAID's search settings and which index kind a collection gets.

Fitted and checked on several collections (``bench/index.py``: Cranfield with its queries split
in two halves, the KD samples of tests/fixtures/data as small corpora, synthetic collections of
other sizes and noise); docs/index.md gives the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from maxsim.errors import InvalidInputError
from maxsim.index.params import SEARCH_KEYS

STAGE2_FACTOR = 4  # stage 2 keeps STAGE2_FACTOR * n_full_scores candidates for stage 4 (see stage2_keep)


def resolve_search_params(n_docs: int, k: int, settings: dict, rescore: bool = False) -> dict:
    """The three search settings for a collection of ``n_docs`` documents and ``k`` results
    (values given in ``settings`` win): ``n_ivf_probe`` 2 up to 50,000 documents, else 4;
    ``centroid_score_threshold`` 0.45; ``n_full_scores`` (documents ranked from their codes)
    max(128, 4 k) — or max(64, 1.5 k) with the float16 copy (its ranking is exact: the candidates
    only have to contain the top k). Fitted by ``bench/index_defaults.py``: the smallest settings
    whose search returns >= 99 % of the exhaustive ranking from the codes on every fit collection
    (k = 10: 64 documents and 1 probe; k = 100: 400 and 1; kept: 128 documents at k = 10 and 2 probes,
    for a margin)."""
    full = max(64, k + k // 2) if rescore else max(128, 4 * k)
    auto = {
        "n_ivf_probe": 2 if n_docs <= 50_000 else 4,
        "centroid_score_threshold": 0.45,
        "n_full_scores": full,
    }
    return {key: auto[key] if settings.get(key) is None else settings[key] for key in SEARCH_KEYS}


def stage2_keep(n_full: int, n_docs: int) -> int:
    """Candidates stage 2 hands to stage 4: STAGE2_FACTOR * n_full, but in a small collection no
    more than max(2 * n_full, n_docs / 8), so stage 4 does not score a third of it from centroids."""
    return min(STAGE2_FACTOR * n_full, max(2 * n_full, n_docs // 8))


def auto_kind(index: str, expected_tokens: int | None, dim: int, params: dict | None = None) -> str:
    """``index``, with "auto" resolved: the kind whose parameters ``params`` name (e.g. ``nbits``:
    PLAID), else ``choose_kind`` for ``expected_tokens`` token vectors."""
    if index != "auto":
        return index
    from maxsim.index import KINDS

    fits = [kind for kind, cls in KINDS.items() if set(params or ()) <= set(cls.params_class._names())]
    if params and len(fits) == 1:
        return fits[0]
    if expected_tokens is None or expected_tokens < 0:
        raise InvalidInputError("index='auto' chooses from the collection's size: pass expected_tokens= (the token "
                                "vectors it will hold, e.g. maxsim.index.estimate_tokens(texts)), or pick "
                                "index='exact' or 'plaid'.")
    return choose_kind(0, int(expected_tokens), dim)[0]


def choose_kind(n_documents: int, n_tokens: int, dim: int) -> tuple[str, str]:
    """``("exact" | "plaid", reason)`` for ``index="auto"``: exact below the size where PLAID stops
    being faster than the exact scan, PLAID above."""
    limit = EXACT_LIMIT_VALUES
    values = n_tokens * dim
    if values < limit:
        return "exact", (f"{n_tokens:,} token vectors x {dim} dims = {values / 1e6:.0f}M values: below "
                         f"{limit / 1e6:.0f}M, PLAID is not faster than an exact scan in every case, and exact "
                         "ranks exactly")
    return "plaid", (f"{n_tokens:,} token vectors x {dim} dims = {values / 1e6:.0f}M values: from "
                     f"{limit / 1e6:.0f}M on, PLAID is faster than an exact scan and ~8x smaller")


# The size from which PLAID (defaults) is faster than the exact (int8) scan at k = 10 and 100, one
# query per call and many (bench/index_defaults.py "crossover"; on an AMD EPYC and an AMX Xeon, 2
# cores each: at 152M values exact still wins k = 100 in batches, at 227M they tie, at 303M PLAID
# wins everywhere: by 28 % at k = 100 in batches on the Xeon, its narrowest margin)
EXACT_LIMIT_VALUES = 250_000_000
CHARS_PER_TOKEN = 4  # English through a WordPiece or BPE vocabulary: about 4 characters a token
PAGE_TOKENS = 1024  # patch vectors of a page (ColPali's 32 x 32 grid), before pooling


def estimate_tokens(texts: Sequence[str] | None = None, pages: int = 0, pool_factor: int = 1) -> int:
    """Token vectors a collection will hold: its texts' characters / CHARS_PER_TOKEN (passages keep
    every token) plus PAGE_TOKENS per page, over ``pool_factor`` (token pooling); for ``index="auto"``."""
    chars = sum(len(text) for text in texts or ())
    return (chars // CHARS_PER_TOKEN + PAGE_TOKENS * pages) // max(1, pool_factor)
