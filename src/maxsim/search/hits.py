"""What a collection answers: ``Hit`` (a search result), ``Passage`` (the indexed chunk a hit scored
with) and ``Document`` (what ``get`` and ``documents`` return). One set of types from the retrievers
to the integrations and the service's response schemas (FastAPI reads these dataclasses)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Passage:
    """The passage (indexed chunk) of a document: ``index``, its ordinal in the document; ``start``,
    ``end``, character offsets in the document's text; ``text`` = ``document.text[start:end]``
    (None where an answer leaves texts out)."""

    index: int
    start: int
    end: int
    text: str | None = None


@dataclass(frozen=True)
class Hit:
    """One search result: the document ``id``, its ``score`` (MaxSim of its best passage, or the fused
    score of a hybrid search), its ``text`` and ``metadata``, and the best ``passage``."""

    id: str
    score: float
    text: str | None
    metadata: dict | None
    passage: Passage | None

    def to_dict(self) -> dict:
        return asdict(self)

    def without_texts(self) -> Hit:
        """This hit without ``text``, ``metadata`` and ``passage.text`` (ids, score and spans stay)."""
        passage = None if self.passage is None else replace(self.passage, text=None)
        return replace(self, text=None, metadata=None, passage=passage)

    def answer_chars(self) -> int:
        """Characters this hit adds to an answer: text, metadata as JSON, passage text."""
        passage = len(self.passage.text or "") if self.passage is not None else 0
        return len(self.text or "") + len(json.dumps(self.metadata)) + passage


@dataclass(frozen=True)
class Document:
    """A stored document: ``id``, ``text`` and ``metadata`` (a JSON dict or None)."""

    id: str
    text: str
    metadata: dict | None

    def to_dict(self) -> dict:
        return asdict(self)
