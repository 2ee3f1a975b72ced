"""The queries of one search call side by side: the per-query part of a batch (PLAID's stages 2-4,
the exact index's re-score) on a pool of ``query_threads()`` threads (torch's thread count unless
``MAXSIM_QUERY_THREADS`` says otherwise).

Each query's part is a chain of small torch and numpy steps (gathers, lookup-table sums, segment
maxima); torch splits each over its threads, and these steps share them poorly (one query, k = 100,
1 thread / 2 threads: 50 / 33 ms on Cranfield's PLAID index). Two queries at once keep both cores
busy instead. ``bench/query_pool.py`` on an Intel Xeon (2 cores), Cranfield (384 dims), ms per
query all in one call, in order / side by side, the same hits: PLAID k = 10 12.7 / 7.2, k = 100
27.9 / 20.4; exact (its re-score) k = 10 6.5 / 6.4, k = 100 18.0 / 13.3 (bench/RESULTS.md). The threads
keep torch's thread count: ``torch.set_num_threads`` is process-wide, so a pool thread that lowered
it would lower it for threads started later too.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from maxsim.errors import InvalidInputError

_LOCAL = threading.local()  # .worker: this thread belongs to a query pool


def map_queries(fn, items) -> list:
    """``[fn(x) for x in items]``, each call under ``torch.inference_mode``: on the query pool when
    there are >= 2 items and ``query_threads()`` >= 2, else in order in this thread (so in a pool
    thread: a nested call never waits for a pool busy with its caller). An item's exception is
    raised here (the first failing item's, in order)."""
    items, threads = list(items), query_threads()
    if len(items) < 2 or threads < 2 or getattr(_LOCAL, "worker", False):
        return [_inference(fn, x) for x in items]
    return list(_pool(threads, os.getpid()).map(functools.partial(_inference, fn), items))


def query_threads() -> int:
    """Threads of the query pool: ``MAXSIM_QUERY_THREADS`` (1: a batch's queries in order, e.g.
    where the caller already searches from several threads), else torch's thread count."""
    given = os.environ.get("MAXSIM_QUERY_THREADS", "")
    if not given:
        return torch.get_num_threads()
    if not given.isdigit() or int(given) < 1:
        raise InvalidInputError(f"MAXSIM_QUERY_THREADS must be a whole number >= 1, got {given!r}.")
    return int(given)


def _inference(fn, x):
    with torch.inference_mode():
        return fn(x)


@functools.lru_cache(maxsize=4)
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """The query pool of ``threads`` threads of process ``pid`` (a forked child makes its own)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="maxsim-query", initializer=_mark_worker)


def _mark_worker() -> None:
    _LOCAL.worker = True
