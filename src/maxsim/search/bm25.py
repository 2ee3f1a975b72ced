"""BM25 (the ``bm25s`` package) over a retriever's documents, one immutable copy per version.

bm25s has no incremental update, so each commit builds the BM25 index of the new version whole
from the documents' tokens (lower-cased, English stopwords removed, English Snowball stemmer from
PyStemmer) and saves it as ``bm25/<name>/`` before the commit names it; readers load the copy
their version names. A missing (already collected), unreadable or checksum-failing copy is rebuilt
from the reader's own snapshot of the texts, never trusted. Tokenizing is three quarters of a
build, so a writer keeps the token ids of the texts it has seen (``TokenCache``) and tokenizes only
new or changed texts: a commit of a few documents to 1,400 Cranfield abstracts costs ~60 ms
instead of ~300 ms.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maxsim.index.storage import crc32_file, new_tag

if TYPE_CHECKING:
    from bm25s.tokenization import Tokenized

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
    import bm25s  # here and below: imported when BM25 is used, not by every search

    return bm25s.tokenize(list(texts), lower=TOKENIZER["lower"], stopwords=TOKENIZER["stopwords"],
                          stemmer=_stemmer(), return_ids=False, show_progress=False)


class BM25Index:
    """BM25 over the documents ``ids`` (row order), immutable once built."""

    def __init__(self, ids: list[str], bm25):
        self.ids, self.bm25 = ids, bm25
        self.positions = {doc_id: i for i, doc_id in enumerate(ids)}

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str], cache: TokenCache | None = None) -> BM25Index:
        """BM25 of the documents ``ids`` with ``texts``; ``cache`` reuses tokens of texts seen before.
        Texts without a single word (e.g. pages without a text layer) give an index that matches nothing."""
        bm25 = None
        corpus = (cache.corpus(ids, texts) if cache else tokenize(texts)) if len(ids) else []
        if any(corpus) if isinstance(corpus, list) else corpus.vocab:  # a list of token lists, or Tokenized
            import bm25s

            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        return cls(list(ids), bm25)

    def top(self, queries: Sequence[str], k: int,
            allowed: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Per query up to ``k`` ``(id, BM25 score)`` best first, among ``allowed`` ids when given;
        documents sharing no term are left out."""
        if self.bm25 is None:
            return [[] for _ in queries]
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.ids), dtype=bool)
            mask[[self.positions[i] for i in allowed if i in self.positions]] = True
        results = []
        for tokens in tokenize(queries):
            if not tokens:  # only stopwords or punctuation: BM25 has nothing to match
                results.append([])
                continue
            scores = np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)
            if mask is not None:
                scores = np.where(mask, scores, 0.0)
            best = np.argsort(-scores, kind="stable")[:k]  # equal scores: insertion order
            results.append([(self.ids[i], float(scores[i])) for i in best if scores[i] > 0])
        return results

    def idf(self, terms: Sequence[str | None]) -> np.ndarray:
        """(len(terms),) float64: BM25's idf ``log(1 + (N - df + 0.5) / (df + 0.5))`` of each stemmed term
        (``tokenize``'s output) over the N documents, df = documents holding it; None: df = N."""
        n = len(self.ids)
        held = np.diff(self.bm25.scores["indptr"]) if self.bm25 is not None else np.zeros(0, np.int64)
        vocab = self.bm25.vocab_dict if self.bm25 is not None else {}
        ids = [vocab.get(t, len(held)) if t is not None else None for t in terms]
        df = np.array([n if i is None else (held[i] if i < len(held) else 0) for i in ids], dtype=np.float64)
        return np.log1p((n - df + 0.5) / (df + 0.5))

    def save(self, folder: Path) -> None:
        """Write into ``folder`` (a new name) via a temporary folder, with checksums, then rename."""
        tmp = folder.with_name(f".tmp-{folder.name}")
        tmp.mkdir(parents=True)
        if self.bm25 is not None:
            self.bm25.save(str(tmp), show_progress=False)
        checksums = {p.name: crc32_file(p) for p in sorted(tmp.iterdir())}
        (tmp / IDS_FILE).write_text(json.dumps({"tokenizer": TOKENIZER, "ids": self.ids, "crc32": checksums}))
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> BM25Index | None:
        """The saved copy, or None when it is missing, made with another tokenizer, or damaged."""
        try:
            saved = json.loads((folder / IDS_FILE).read_text())
            if saved.get("tokenizer") != TOKENIZER:
                return None
            damaged = [name for name, crc in saved["crc32"].items() if crc32_file(folder / name) != crc]
            if damaged:
                logger.warning("BM25 file %s does not match its checksum; rebuilding.", folder / damaged[0])
                return None
            ids = saved["ids"]
            import bm25s

            bm25 = bm25s.BM25.load(str(folder), show_progress=False) if saved["crc32"] else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if bm25 is not None and int(bm25.scores["num_docs"]) != len(ids):
            return None
        return cls(ids, bm25)


class TokenCache:
    """Token ids of the texts last given, by document id, so that a build tokenizes only new or
    changed texts. Memory: 4 bytes per token plus the vocabulary."""

    def __init__(self):
        self._words: dict[str, int] = {}  # word -> id, grows until compacted
        self._docs: dict[str, tuple[int, np.ndarray]] = {}  # doc id -> (hash of its text, word ids)

    def corpus(self, ids: Sequence[str], texts: Sequence[str]) -> Tokenized:
        """The documents as bm25s token ids over a vocabulary of exactly the words they use."""
        fresh = [i for i, (doc_id, text) in enumerate(zip(ids, texts))
                 if self._docs.get(doc_id, (None,))[0] != hash(text)]
        for i, words in zip(fresh, tokenize([texts[i] for i in fresh])):
            self._docs[ids[i]] = (hash(texts[i]), np.array([self._words.setdefault(w, len(self._words))
                                                            for w in words], dtype=np.int64))
        self._docs = {doc_id: self._docs[doc_id] for doc_id in ids}
        rows = [self._docs[doc_id][1] for doc_id in ids]
        used, compact = np.unique(np.concatenate(rows), return_inverse=True)
        names = np.array(list(self._words) or [""], dtype=object)
        vocab = {str(word): i for i, word in enumerate(names[used])}
        if len(self._words) > 2 * len(used) + 1024:  # words of removed texts pile up: forget them
            self._words, self._docs = {}, {}
        bounds = np.cumsum([len(r) for r in rows])[:-1]
        from bm25s.tokenization import Tokenized

        return Tokenized(ids=[part.tolist() for part in np.split(compact, bounds)], vocab=vocab)


class BM25Versions:
    """The BM25 copies of a retriever folder (``root`` = ``bm25/``), by name; a few kept in memory."""

    def __init__(self, root: Path, cached: int = 3):
        self.root, self.cached = Path(root), cached
        self._memory: OrderedDict[str, BM25Index] = OrderedDict()
        self._lock = threading.Lock()
        self._tokens = TokenCache()  # used by the writer only (under the folder's lock)

    def publish(self, ids: Sequence[str], texts: Sequence[str]) -> str:
        """Build and save the copy of a new version; returns its name (for the commit)."""
        index = BM25Index.build(ids, texts, self._tokens)
        name = new_tag()
        self.root.mkdir(exist_ok=True)
        index.save(self.root / name)
        self._remember(name, index)
        return name

    def get(self, name: str, texts: Callable[[], tuple[list[str], list[str]]]) -> BM25Index:
        """The copy ``name``; rebuilt from ``texts()`` -> (ids, texts) if it cannot be loaded or holds
        other ids."""
        with self._lock:
            index = self._memory.get(name)
        if index is None:
            ids, documents = texts()
            index = BM25Index.load(self.root / name)
            if index is None or index.ids != ids:  # missing, damaged, or not this version's documents
                index = BM25Index.build(ids, documents)
            self._remember(name, index)
        return index

    def _remember(self, name: str, index: BM25Index) -> None:
        with self._lock:
            self._memory[name] = index
            self._memory.move_to_end(name)
            while len(self._memory) > self.cached:
                self._memory.popitem(last=False)

    def collect(self, keep: set[str]) -> None:
        """Delete copies (and interrupted writes) other than ``keep`` (writer lock held)."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
