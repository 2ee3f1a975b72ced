"""The queries of one search call side by side: the per-query part of a batch (PLAID's stages 2-4,
the exact index's re-score) on a pool of ``query_threads()`` threads (torch's thread count unless
``MAXSIM_QUERY_THREADS`` says otherwise).

Each query's part is a chain of small torch and numpy steps (gathers, lookup-table sums, segment
maxima); torch splits each over its threads, and these steps share them poorly. Two queries at once
keep both cores busy instead. ``bench/query_pool.py`` on an Intel Xeon (2 cores), Cranfield (384
dims), ms per query all in one call, in order / side by side, the same hits: PLAID k = 10 7.7 / 5.6,
k = 100 21.3 / 16.6; exact (its re-score) k = 10 4.5 / 4.4, k = 100 10.6 / 9.2 (bench/RESULTS.md).

A pool thread runs its torch steps on one OpenMP thread (``threadpoolctl``: OpenMP's thread count
belongs to the calling thread). With torch's count there, each pool thread would keep a team of
OpenMP threads of its own: more threads than cores, which makes OpenMP put idle threads to sleep at
once, and every later torch step of every thread then waits for its team to wake (one PLAID query
per call, 4,000 synthetic documents at 384 dims, k = 10: 10.8 ms before the process's first batch,
13.5 ms after it). Torch's own setting is left alone: ``torch.set_num_threads`` is process-wide,
so a pool thread that lowered it would lower it for threads started later too.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from threadpoolctl import threadpool_limits

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
    return ThreadPoolExecutor(threads, thread_name_prefix="maxsim-query", initializer=_start_worker)


def _start_worker() -> None:
    """Mark this thread a pool thread; give it one OpenMP thread (after torch's first use here,
    which sets this thread's count from torch's and would undo the limit)."""
    _LOCAL.worker = True
    torch.get_num_threads()
    threadpool_limits(1, user_api="openmp")
