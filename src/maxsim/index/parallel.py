"""The queries of one search call side by side: the per-query part of a batch (PLAID's stages 2-4,
the exact index's re-score) on a pool of ``query_threads()`` threads (torch's thread count unless
``MAXSIM_QUERY_THREADS`` says otherwise).

Each query's part is a chain of small torch and numpy steps (gathers, lookup-table sums, segment
maxima); torch splits each over its threads, and these steps share them poorly. Two queries at once
keep both cores busy instead. ``bench/query_pool.py`` on an Intel Xeon (2 cores), Cranfield (384
dims), ms per query all in one call, in order / side by side, the same hits: PLAID k = 10 7.7 / 5.6,
k = 100 21.3 / 16.6; exact (its re-score) k = 10 4.5 / 4.4, k = 100 10.6 / 9.2 (bench/RESULTS.md).

A pool thread runs torch on one thread. With torch's count there, each pool thread would keep a
team of OpenMP threads of its own (for torch's steps and for MKL's products): more threads than
cores, which makes OpenMP put idle threads to sleep at once, and every later torch step of every
thread then waits for its team to wake (one PLAID query per call, 20,000 synthetic documents at
128 dims, k = 10: 5.7 ms before the process's first batch, 9.2 ms after it). ``torch.set_num_threads``
sets the calling thread's OpenMP and MKL counts but also torch's process-wide default (what threads
started later get), so the pool's threads are started together when it is made, each sets 1 for
itself, and the default is then put back.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from maxsim.errors import InvalidInputError

_LOCAL = threading.local()  # .worker: this thread belongs to a query pool
_POOL_LOCK = threading.Lock()


def map_queries(fn, items) -> list:
    """``[fn(x) for x in items]``, each call under ``torch.inference_mode``: on the query pool when
    there are >= 2 items and ``query_threads()`` >= 2, else in order in this thread (so in a pool
    thread: a nested call never waits for a pool busy with its caller). An item's exception is
    raised here (the first failing item's, in order)."""
    items, threads = list(items), query_threads()
    if len(items) < 2 or threads < 2 or getattr(_LOCAL, "worker", False):
        return [_inference(fn, x) for x in items]
    with _POOL_LOCK:  # one pool, however many threads make their first batch at once
        pool = _pool(threads, os.getpid())
    return list(pool.map(functools.partial(_inference, fn), items))


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
    """The query pool of ``threads`` threads of process ``pid`` (a forked child makes its own), its
    threads started now: each sets torch to one thread, then torch's default (what threads started
    later get) is set back to this thread's count."""
    before, started = torch.get_num_threads(), threading.Barrier(threads + 1, timeout=60)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="maxsim-query", initializer=_start_worker)
    for _ in range(threads):  # each task holds its thread until all have started
        pool.submit(started.wait)
    started.wait()
    torch.set_num_threads(before)
    return pool


def _start_worker() -> None:
    """Mark this thread a pool thread and give it one torch thread (torch's first use here comes
    first: it would set this thread's count from the process default)."""
    _LOCAL.worker = True
    torch.get_num_threads()
    torch.set_num_threads(1)
