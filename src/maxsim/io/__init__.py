"""Text in and out for the command line and the service: collection readers (.txt/.md folder, .jsonl,
.csv, BEIR folder) and the presentation of a hit (best passage, matched query terms)."""

from maxsim.io.corpus import Corpus, CorpusError, read_corpus
from maxsim.io.passage import best_passage, matched_terms

__all__ = ["Corpus", "CorpusError", "best_passage", "matched_terms", "read_corpus"]
