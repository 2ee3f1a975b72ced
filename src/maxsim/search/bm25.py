"""BM25 (the ``bm25s`` package) over a retriever's stored texts.

bm25s has no incremental update, so the BM25 index is derived data: rebuilt whole from the stored
texts (lower-cased, English stopwords removed, English Snowball stemmer from PyStemmer)
whenever the set of ids differs from the one it was built for (after each add/remove, and on
open if a crash left it behind). It is saved next to the ids it covers (``bm25/ids.json``); a
missing, stale, unreadable or checksum-failing copy is rebuilt, never trusted. Cost: one tokenize + index pass over
all texts per commit, about 0.75 ms per Cranfield-sized document (1 s for 1,400, 10 s for 14,000
on a shared 2-core CPU): small next to encoding the added documents, large for tiny adds to a
big collection (batch them).
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import bm25s
import numpy as np

from maxsim.index.storage import crc32_file
from maxsim.scoring import topk

logger = logging.getLogger(__name__)

# Tokenization used for documents and queries alike; recorded with the saved index.
TOKENIZER = {"lower": True, "stopwords": "en", "stemmer": "english"}
IDS_FILE = "ids.json"


@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer
    except ImportError:
        raise ImportError("hybrid search stems words with PyStemmer: pip install PyStemmer") from None
    return Stemmer.Stemmer(TOKENIZER["stemmer"]).stemWords


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Texts -> lists of lower-cased, Snowball-stemmed word tokens, English stopwords removed."""
    return bm25s.tokenize(list(texts), lower=TOKENIZER["lower"], stopwords=TOKENIZER["stopwords"],
                          stemmer=_stemmer(), return_ids=False, show_progress=False)


class BM25Ranker:
    """BM25 scores of queries against the documents ``ids`` (in that order), kept in ``folder``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._state: tuple[list[str], dict[str, int], object] = ([], {}, None)  # ids, positions, bm25s.BM25
        self._lock = threading.Lock()

    @property
    def ids(self) -> list[str]:
        """The document ids covered, in BM25 row order."""
        return self._state[0]

    def sync(self, ids: Sequence[str], texts_of: Callable[[list[str]], list[str]]) -> None:
        """Make the ranker cover exactly ``ids``: keep it, load the saved copy if it matches, or
        rebuild from ``texts_of(ids)`` and save it."""
        ids = list(ids)
        with self._lock:
            if ids == self.ids and (self._state[2] is not None or not ids):
                return
            if not self._load(ids):
                self._build(ids, texts_of(ids))
                self._save()

    def top(self, queries: Sequence[str], k: int, subset: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Per query up to ``k`` ``(id, BM25 score)`` best first; documents sharing no term are left out."""
        ids, positions, bm25 = self._state  # one snapshot, even if another thread syncs meanwhile
        if bm25 is None:
            return [[] for _ in queries]
        allowed = None
        if subset is not None:
            allowed = np.zeros(len(ids), dtype=bool)
            allowed[[positions[i] for i in subset]] = True
        results = []
        for tokens in tokenize(queries):
            if not tokens:  # only stopwords or punctuation: BM25 has nothing to match
                results.append([])
                continue
            scores = np.asarray(bm25.get_scores(tokens), dtype=np.float32)
            if allowed is not None:
                scores = np.where(allowed, scores, 0.0)
            idx, best = topk(scores[None, :], k)
            results.append([(ids[i], float(s)) for i, s in zip(idx[0], best[0]) if s > 0])
        return results

    # -- building and persistence ------------------------------------------------------------
    def _build(self, ids: list[str], texts: list[str]) -> None:
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            bm25.index(tokenize(texts), show_progress=False)
        self._set(ids, bm25)

    def _save(self) -> None:
        """Write to a fresh folder, then swap it in; a crash leaves either copy, both checked on load.
        If another process swaps at the same moment, its copy stays (ours is in memory anyway)."""
        tmp = self.folder.with_name(f"{self.folder.name}.tmp-{uuid.uuid4().hex}")
        old = self.folder.with_name(f"{self.folder.name}.old-{uuid.uuid4().hex}")
        try:
            tmp.mkdir(parents=True)
            ids, _, bm25 = self._state
            if bm25 is not None:
                bm25.save(str(tmp), show_progress=False)
            checksums = {p.name: crc32_file(p) for p in sorted(tmp.iterdir())}
            (tmp / IDS_FILE).write_text(json.dumps({"tokenizer": TOKENIZER, "ids": ids, "crc32": checksums}))
            if self.folder.exists():
                self.folder.rename(old)
            tmp.rename(self.folder)
        except OSError as exc:
            logger.warning("could not save the BM25 index to %s (%s); it will be rebuilt when next opened.",
                           self.folder, exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    def _load(self, ids: list[str]) -> bool:
        """Load the saved copy if it covers exactly ``ids`` with today's tokenizer and its files match
        their checksums; False otherwise (a damaged copy is logged and rebuilt)."""
        try:
            saved = json.loads((self.folder / IDS_FILE).read_text())
            if saved.get("tokenizer") != TOKENIZER or saved.get("ids") != ids:
                return False
            damaged = [name for name, crc in saved["crc32"].items() if crc32_file(self.folder / name) != crc]
            if damaged:
                logger.warning("BM25 file %s does not match its checksum; rebuilding.", self.folder / damaged[0])
                return False
            bm25 = bm25s.BM25.load(str(self.folder), show_progress=False) if ids else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        if bm25 is not None and int(bm25.scores["num_docs"]) != len(ids):
            return False
        self._set(ids, bm25)
        return True

    def _set(self, ids: list[str], bm25) -> None:
        self._state = (ids, {doc_id: i for i, doc_id in enumerate(ids)}, bm25)
