"""Rules fitted on measurements: PLAID's search settings and which index kind a collection gets.

Fitted and checked on several collections (``bench/index.py``: Cranfield with its queries split
in two halves, the KD samples of tests/fixtures/data as small corpora, synthetic collections of
other sizes and noise); docs/index.md gives the numbers.
"""

from __future__ import annotations

from maxsim.index.params import SEARCH_KEYS

STAGE2_FACTOR = 4  # stage 2 keeps STAGE2_FACTOR * n_full_scores candidates for stage 4 (see stage2_keep)


def resolve_search_params(n_docs: int, k: int, settings: dict, rescore: bool = False) -> dict:
    """The three search settings for a collection of ``n_docs`` documents and ``k`` results
    (values given in ``settings`` win): ``n_ivf_probe`` 2 up to 50,000 documents, else 4;
    ``centroid_score_threshold`` 0.45; ``n_full_scores`` (documents ranked from their codes, or on
    the float16 copy with ``rescore``): max(1.5 k, 64) with the copy, else max(4 k, 64) up to
    20,000 documents and max(4 k, 128) above; never more than max(k, n_docs / 4)."""
    full = max(k + k // 2, 64) if rescore else max(4 * k, 64 if n_docs <= 20_000 else 128)
    auto = {
        "n_ivf_probe": 2 if n_docs <= 50_000 else 4,
        "centroid_score_threshold": 0.45,
        "n_full_scores": min(full, max(k, n_docs // 4)),
    }
    return {key: auto[key] if settings.get(key) is None else settings[key] for key in SEARCH_KEYS}


def stage2_keep(n_full: int, n_docs: int) -> int:
    """Candidates stage 2 hands to stage 4: STAGE2_FACTOR * n_full, but in a small collection no
    more than max(2 * n_full, n_docs / 8), so stage 4 does not score a third of it from centroids."""
    return min(STAGE2_FACTOR * n_full, max(2 * n_full, n_docs // 8))


def choose_kind(n_documents: int, n_tokens: int, dim: int) -> tuple[str, str]:
    """``("exact" | "plaid", reason)`` for ``index="auto"``: exact below the size where PLAID stops
    being faster than the exact scan, PLAID above."""
    limit = EXACT_LIMIT_VALUES
    values = n_tokens * dim
    if values < limit:
        return "exact", (f"{n_tokens:,} token vectors x {dim} dims = {values / 1e6:.0f}M values: below "
                         f"{limit / 1e6:.0f}M, an exact scan is as fast as PLAID and exact")
    return "plaid", (f"{n_tokens:,} token vectors x {dim} dims = {values / 1e6:.0f}M values: from "
                     f"{limit / 1e6:.0f}M on, PLAID is faster than an exact scan and ~8x smaller")


EXACT_LIMIT_VALUES = 50_000_000
