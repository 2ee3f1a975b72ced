"""Text in and out for the command line and the service: collection readers (a folder of
.txt/.md/.html/.pdf files, .jsonl/.csv/.parquet tables, BEIR folders; image files and PDF pages as
pages), the passage splitter, and the presentation of a hit (its excerpt, matched query terms)."""

from maxsim.io.chunking import split_documents, split_passages
from maxsim.io.corpus import Columns, Corpus, CorpusError, read_beir_corpus, read_corpus
from maxsim.io.documents import Skipped, beir_text
from maxsim.io.excerpt import best_excerpt, matched_terms
from maxsim.io.pages import PageCorpus, PageRef, read_pages
from maxsim.io.records import iter_jsonl, iter_records

__all__ = ["Columns", "Corpus", "CorpusError", "PageCorpus", "PageRef", "Skipped", "beir_text", "best_excerpt",
           "iter_jsonl", "iter_records", "matched_terms", "read_beir_corpus", "read_corpus", "read_pages",
           "split_documents", "split_passages"]
