"""Split long documents into passages: token windows of a fast tokenizer, cut at sentence or line
boundaries near the window end, with overlap between consecutive windows.

A passage is a character span ``(start, end)`` of the document text. Guarantees, for any text:
passages are non-empty (for a non-empty text), in order, cover every character, and each one,
tokenized alone without special tokens, has at most ``max_tokens`` tokens.

Defaults were chosen by measurement (``bench/passages.py``, results in bench/RESULTS.md and
docs/collections.md): ``OVERLAP`` tokens of overlap and a boundary searched in the last
``LOOKBACK`` tokens of each window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from maxsim.errors import InvalidInputError

OVERLAP = 64
LOOKBACK = 24
Span = tuple[int, int]

# Kinds of cut, by preference: before a line or a sentence, before a word, anywhere (inside a word).
HARD, WORD, STRONG = 0, 1, 2
_LINE_START = re.compile(r"\n[ \t]*(?=\S)")
_SENTENCE_START = re.compile(r"[.!?][\"')\]]*\s+(?=\S)")
_WORD_START = re.compile(r"\s+(?=\S)")
_SPACE_CODES = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)


def split_passages(text: str, tokenizer, max_tokens: int, overlap: int = OVERLAP,
                   lookback: int = LOOKBACK) -> list[Span]:
    """Character spans ``[(start, end), ...]`` of the passages of ``text``: windows of at most
    ``max_tokens`` tokens of ``tokenizer`` (a Hugging Face fast tokenizer, no special tokens counted),
    consecutive windows sharing about ``overlap`` tokens, each window ending at the last sentence or
    line boundary within its final ``lookback`` tokens (else a word boundary, else anywhere).
    A text of at most ``max_tokens`` tokens gives ``[(0, len(text))]``."""
    return split_documents([text], tokenizer, max_tokens, overlap, lookback)[0]


def split_documents(texts: Sequence[str], tokenizer, max_tokens: int, overlap: int = OVERLAP,
                    lookback: int = LOOKBACK) -> list[list[Span]]:
    """``split_passages`` of every text, tokenizing them in one batch. Windows are cut on the
    text's own tokens; a text whose passages re-tokenize longer than ``max_tokens`` (a cut inside
    a word, byte-level pieces) is split again, checking each window as it goes."""
    _check_sizes(max_tokens, overlap, lookback)
    texts = list(texts)
    splitters = {i: _Splitter(texts[i], spans, tokenizer, max_tokens, overlap, lookback)
                 for i, spans in enumerate(_offsets(tokenizer, texts)) if len(spans) > max_tokens}
    result = [[(0, len(text))] for text in texts]
    for i, splitter in splitters.items():
        result[i] = splitter.passages()
    pieces = [(i, texts[i][start:end]) for i in splitters for start, end in result[i]]
    lengths = count_tokens([piece for _, piece in pieces], tokenizer)
    for i in {i for (i, _), length in zip(pieces, lengths) if length > max_tokens}:
        splitters[i].checked = True
        result[i] = splitters[i].passages()
    return result


def count_tokens(texts: Sequence[str], tokenizer) -> list[int]:
    """Tokens per text, without special tokens."""
    return [len(spans) for spans in _offsets(tokenizer, list(texts))]


class _Splitter:
    """The windows of one text; ``offsets`` (n_tokens, 2) are the character spans of its tokens."""

    def __init__(self, text: str, offsets: np.ndarray, tokenizer, max_tokens: int, overlap: int, lookback: int):
        self.text, self.tokenizer = text, tokenizer
        # a window ends at most ``lookback`` tokens early, so that it always moves on past its overlap
        self.max_tokens, self.overlap = max_tokens, overlap
        self.lookback = min(lookback, (max_tokens - overlap) // 2)
        self.starts = offsets[:, 0]
        self.kinds = _cut_kinds(text, offsets)
        self.checked = False  # re-tokenize each window to check its length

    def passages(self) -> list[Span]:
        n, first, spans = len(self.starts), 0, []
        while True:
            last = self._end(first) if first + self.max_tokens < n else n
            while self._char(last) <= self._char(first):  # tokens sharing one character (bytes of it)
                last += 1
            spans.append((self._char(first), self._char(last)))
            if last >= n:
                return spans
            first = self._next_start(first, last)

    def _end(self, first: int) -> int:
        """Token index (exclusive) where the window starting at token ``first`` ends."""
        limit = first + self.max_tokens
        while True:
            last = self._best_cut(max(first + 1, limit - self.lookback), limit)
            if not self.checked:
                return last
            excess = self._length(first, last) - self.max_tokens
            if excess <= 0 or last - first <= 1:
                return last
            limit = max(first + 1, last - excess)  # the text re-tokenizes longer than its tokens: shrink

    def _best_cut(self, low: int, high: int) -> int:
        """The latest cut in [low, high] of the best kind there (a token index: cut before that token)."""
        window = self.kinds[low:high + 1]
        best = window.max()
        return low + int(np.flatnonzero(window == best)[-1]) if best > HARD else high

    def _next_start(self, first: int, last: int) -> int:
        """Start of the next window: ``overlap`` tokens before ``last``, moved back to the latest
        sentence or line start (else word start) within ``lookback`` tokens."""
        target = max(first + 1, last - self.overlap)
        return self._best_cut(max(first + 1, target - self.lookback), target)

    def _char(self, token: int) -> int:
        """Character offset of a cut before ``token`` (0 before the first, len(text) after the last)."""
        if token == 0:
            return 0
        return len(self.text) if token >= len(self.starts) else int(self.starts[token])

    def _length(self, first: int, last: int) -> int:
        passage = self.text[self._char(first):self._char(last)]
        return len(self.tokenizer(passage, add_special_tokens=False, verbose=False)["input_ids"])


def _cut_kinds(text: str, offsets: np.ndarray) -> np.ndarray:
    """(n_tokens + 1,) int8: how good a cut before each token is (HARD, WORD, STRONG); index n_tokens
    is the end of the text. A boundary marks the first non-space character after white space; it
    counts for token t when it is token t's first non-space character."""
    marks = np.zeros(len(text) + 1, dtype=np.int8)
    for pattern, kind in ((_WORD_START, WORD), (_SENTENCE_START, STRONG), (_LINE_START, STRONG)):
        ends = np.fromiter((m.end() for m in pattern.finditer(text)), dtype=np.int64)
        marks[ends] = np.maximum(marks[ends], kind)
    space = np.isin(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), _SPACE_CODES)
    solid = np.flatnonzero(~space)  # positions of non-space characters
    starts, ends = offsets[:, 0], offsets[:, 1]
    after = np.searchsorted(solid, starts)  # the first non-space character at or after each start
    content = np.minimum(np.append(solid, len(text))[after], ends)
    kinds = np.append(marks[content], STRONG)
    kinds[0] = HARD
    return kinds


def _offsets(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Per text, the (n_tokens, 2) int64 character spans of its tokens (no special tokens)."""
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [np.asarray(spans, dtype=np.int64).reshape(-1, 2) for spans in encoded["offset_mapping"]]


def _check_sizes(max_tokens: int, overlap: int, lookback: int) -> None:
    for name, value, low in (("max_tokens", max_tokens, 1), ("overlap", overlap, 0), ("lookback", lookback, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"{name} must be an int >= {low}, got {value!r}.")
    if overlap >= max_tokens:
        raise InvalidInputError(f"overlap ({overlap}) must be smaller than max_tokens ({max_tokens}).")
