"""Work queues of the service: bounded thread pools, and the batcher that searches concurrent
requests together.

``SearchBatcher``: a search request joins a queue; each of ``workers`` threads takes the oldest
request and every other waiting one with the same options (k, hybrid, filter) — up to
``max_queries`` queries, waiting up to ``wait`` seconds for more when it has fewer — and answers them
with one ``Collection.search`` call: the queries are encoded in one forward pass and scored in one
scan. Under load the queue fills while the workers are busy, so batches grow with the number of
clients; alone, a request waits at most ``wait``. A batch that fails is retried request by request,
so each request gets its own answer or its own error. A full queue (``max_pending`` requests) or
pool answers ``BusyError`` (503 with ``Retry-After``) instead of growing without bound.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from maxsim.errors import BusyError


@dataclass
class Request:
    key: str
    queries: list[str]
    future: Future = field(default_factory=Future)


class SearchBatcher:
    """Concurrent ``collection.search`` requests with equal options answered in batches."""

    def __init__(self, collection, workers: int, wait: float, max_queries: int, max_pending: int):
        self.collection, self.wait, self.max_queries, self.max_pending = collection, wait, max_queries, max_pending
        self._queue: deque[Request] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0  # collection.search calls made, for monitoring (requests / batches = batch size)
        self._threads = [threading.Thread(target=self._work, name=f"maxsim-search-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, queries: list[str], **options) -> Future:
        """A future of ``collection.search(queries, **options)`` (``BusyError`` when the queue is full)."""
        request = Request(json.dumps(options, sort_keys=True), list(queries))
        with self._ready:
            if len(self._queue) >= self.max_pending:
                raise BusyError(f"{len(self._queue)} searches are waiting, the most this service queues: "
                                "retry in a moment.")
            self._queue.append(request)
            self._ready.notify()
        return request.future

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._answer(batch)

    def _next_batch(self) -> list[Request] | None:
        """The oldest request and the waiting ones with its options (None once closed and empty)."""
        with self._ready:
            while not self._queue:
                if self._closed:
                    return None
                self._ready.wait()
            batch = [self._queue.popleft()]
            deadline = time.monotonic() + self.wait
            while True:
                self._take_matching(batch)
                left = deadline - time.monotonic()
                if self._size(batch) >= self.max_queries or left <= 0 or self._closed:
                    return batch
                self._ready.wait(left)

    def _take_matching(self, batch: list[Request]) -> None:
        """Move queued requests with the batch's options into it, oldest first, while they fit."""
        for request in [r for r in self._queue if r.key == batch[0].key]:
            if self._size(batch) + len(request.queries) > self.max_queries:
                break
            self._queue.remove(request)
            batch.append(request)

    @staticmethod
    def _size(batch: list[Request]) -> int:
        return sum(len(r.queries) for r in batch)

    def _answer(self, batch: list[Request]) -> None:
        options = json.loads(batch[0].key)
        self.batches += 1
        try:
            results = self.collection.search([q for r in batch for q in r.queries], **options)
        except Exception as error:
            if len(batch) == 1:
                batch[0].future.set_exception(error)
                return
            for request in batch:  # whose error is it: each request alone
                self._answer([request])
            return
        start = 0
        for request in batch:
            request.future.set_result(results[start: start + len(request.queries)])
            start += len(request.queries)

    def close(self) -> None:
        """Answer what is queued, then stop the workers."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()


class BoundedPool:
    """A thread pool that refuses work (``BusyError``) past ``max_pending`` queued or running calls."""

    def __init__(self, threads: int, max_pending: int, name: str, initializer=None, initargs=()):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name, initializer=initializer,
                                        initargs=initargs)
        self.max_pending, self._pending, self._lock = max_pending, 0, threading.Lock()

    def submit(self, fn, *args) -> Future:
        with self._lock:
            if self._pending >= self.max_pending:
                raise BusyError(f"{self._pending} requests of this kind are waiting, the most this service "
                                "queues: retry in a moment.")
            self._pending += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
