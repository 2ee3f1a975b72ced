"""``QueryCache``: a model that remembers the vectors of its last queries."""

from __future__ import annotations

import threading
from collections import OrderedDict


class QueryCache:
    """A model whose ``encode_query`` remembers its last few answers, so that what encodes the same
    queries again (shards searching them in one fan-out, the explanations of a search's hits) encodes
    them once; everything else is the model's. Threads asking for the same queries at once wait for
    the one encoding them; other queries are encoded concurrently."""

    SIZE = 64

    def __init__(self, model):
        self._model, self._lock, self._memory = model, threading.Lock(), OrderedDict()
        self._pending: dict[tuple, threading.Event] = {}

    def encode_query(self, texts, **kwargs):
        key = (tuple(texts), tuple(sorted(kwargs.items())))
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
            pending, mine = self._pending.get(key), key not in self._pending
            if mine:
                pending = self._pending[key] = threading.Event()
        if not mine:
            pending.wait()
            with self._lock:
                if key in self._memory:
                    return self._memory[key]
            return self._model.encode_query(list(texts), **kwargs)  # its encoder failed: raise the error here
        try:
            vectors = self._model.encode_query(list(texts), **kwargs)
            with self._lock:
                for text, v in zip(texts, vectors):  # single queries too (a hybrid's best passages)
                    self._remember(((text,), key[1]), [v])
                self._remember(key, vectors)
            return vectors
        finally:
            with self._lock:
                self._pending.pop(key)
            pending.set()

    def _remember(self, key, vectors) -> None:
        self._memory[key] = vectors
        self._memory.move_to_end(key)
        while len(self._memory) > self.SIZE:
            self._memory.popitem(last=False)

    def __call__(self, *args, **kwargs):
        return self._model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)
