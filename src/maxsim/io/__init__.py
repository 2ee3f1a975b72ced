"""Text in and out for the command line and the service: collection readers (a folder of
.txt/.md/.html/.pdf files, .jsonl/.csv/.parquet tables, BEIR folders; image files and PDF pages as
pages), the passage splitter, and the presentation of a hit (its excerpt, matched query terms).
Exports are imported on first use (a search needs the excerpt, not the readers)."""

from maxsim.lazy import lazy_exports

_EXPORTS = {**{name: "maxsim.io.chunking" for name in ("split_documents", "split_passages")},
            **{name: "maxsim.io.corpus" for name in ("Columns", "Corpus", "CorpusError", "read_beir_corpus",
                                                      "read_corpus")},
            **{name: "maxsim.io.documents" for name in ("Skipped", "beir_text")},
            **{name: "maxsim.io.excerpt" for name in ("best_excerpt", "matched_terms", "shown")},
            **{name: "maxsim.io.pages" for name in ("PageCorpus", "PageRef", "read_pages")},
            **{name: "maxsim.io.records" for name in ("iter_jsonl", "iter_records")}}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
