"""The query pool (``maxsim.index.parallel``): a batch's queries side by side give what they give one
by one, in order, with errors raised, nested calls in line, and torch's thread count untouched."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from maxsim.errors import InvalidInputError
from maxsim.index import PlaidIndex
from maxsim.index.parallel import map_queries
from maxsim.index.synthetic import ClusteredCollection


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_results_in_order_on_pool_threads_under_inference_mode(two_threads):
    def work(x):
        return x * x, threading.current_thread().name, torch.is_inference_mode_enabled()

    out = map_queries(work, range(40))
    assert [v for v, _, _ in out] == [x * x for x in range(40)]
    assert all(name.startswith("maxsim-query") for _, name, _ in out)
    assert all(inference for _, _, inference in out)


def test_one_item_or_one_torch_thread_runs_in_this_thread(two_threads):
    here = threading.current_thread().name
    assert map_queries(lambda x: threading.current_thread().name, [0]) == [here]
    torch.set_num_threads(1)
    assert map_queries(lambda x: threading.current_thread().name, range(3)) == [here] * 3


def test_maxsim_query_threads_sets_the_pool(two_threads, monkeypatch):
    here = threading.current_thread().name
    monkeypatch.setenv("MAXSIM_QUERY_THREADS", "1")
    assert map_queries(lambda x: threading.current_thread().name, range(3)) == [here] * 3
    monkeypatch.setenv("MAXSIM_QUERY_THREADS", "3")
    names = map_queries(lambda x: (time.sleep(0.05), threading.current_thread().name)[1], range(6))
    assert all(n.startswith("maxsim-query") for n in names) and len(set(names)) == 3
    monkeypatch.setenv("MAXSIM_QUERY_THREADS", "two")
    with pytest.raises(InvalidInputError, match="MAXSIM_QUERY_THREADS must be a whole number >= 1, got 'two'"):
        map_queries(lambda x: x, range(3))


def test_the_first_error_is_raised(two_threads):
    def work(x):
        if x == 5:
            raise ValueError("query 5")
        return x

    with pytest.raises(ValueError, match="query 5"):
        map_queries(work, range(10))
    assert map_queries(lambda x: x, range(4)) == [0, 1, 2, 3]  # the pool still works


def test_nested_calls_run_in_line_instead_of_waiting_for_the_pool(two_threads):
    """Every pool thread busy with an outer item that maps again: without running the inner map in
    line, each would wait for a free pool thread forever."""
    result = []
    outer = threading.Thread(target=lambda: result.append(
        map_queries(lambda x: sum(map_queries(lambda y: x * y, range(4))), range(8))), daemon=True)
    outer.start()
    outer.join(timeout=60)
    assert result == [[6 * x for x in range(8)]]


def test_threads_started_later_keep_torchs_thread_count(two_threads):
    map_queries(lambda x: torch.ones(4).sum(), range(4))
    seen = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == [2] and torch.get_num_threads() == 2


def test_pool_threads_run_torch_on_one_thread(two_threads):
    seen = map_queries(lambda x: (time.sleep(0.02), torch.get_num_threads())[1], range(6))
    assert seen == [1] * 6 and torch.get_num_threads() == 2


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts the process's threads in /proc")
def test_pool_threads_start_no_threads_of_their_own():
    """A fresh process with torch set to 2 threads: products and elementwise steps on the pool add
    the pool's 2 threads and no others (a pool thread at torch's count starts OpenMP and MKL threads
    of its own: more threads than cores, and every later torch step of every thread slows down)."""
    code = textwrap.dedent("""
        import os, torch
        from maxsim.index.parallel import map_queries
        torch.set_num_threads(2)
        x = torch.randn(256, 256)
        x @ x; torch.randn(1 << 16).exp().sum()  # this thread's own OpenMP threads
        before = len(os.listdir("/proc/self/task"))
        map_queries(lambda i: (x @ x).sum() + torch.randn(1 << 16).exp().sum(), range(8))
        print(len(os.listdir("/proc/self/task")) - before, torch.get_num_threads())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "2"]


@pytest.mark.parametrize("rescore", [None, "float16"])
def test_plaid_batch_equals_one_query_per_call(tmp_path, two_threads, rescore):
    """Defaults (inverted file, stage 3, codes or float16 copy) and a subset: the batch's queries,
    scored side by side, get the hits and scores they get alone."""
    coll = ClusteredCollection(400, dim=32, n_terms=48, doc_tokens=(8, 30), noise=0.3, seed=5)
    ids = [f"d{i}" for i in range(400)]
    index = PlaidIndex.create(tmp_path / "ix", 32, nbits=2, n_centroids=64, rescore=rescore)
    index.add(ids, coll.documents())
    queries = coll.queries(24)
    subset = ids[::3]
    for options in ({}, {"subset": subset}):
        batch = index.search(queries, k=7, **options)
        alone = [index.search([q], k=7, **options)[0] for q in queries]
        assert [[i for i, _ in h] for h in batch] == [[i for i, _ in h] for h in alone]
        np.testing.assert_array_equal([[s for _, s in h] for h in batch], [[s for _, s in h] for h in alone])
        assert len({tuple(i for i, _ in h) for h in batch}) > 1  # the queries differ
