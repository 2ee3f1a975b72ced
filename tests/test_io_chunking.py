"""maxsim.io.chunking: passages cover the text, are never empty, fit the budget when tokenized
alone, end at sentence or line boundaries when one is near, and overlap as asked."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CRANFIELD, TINY_MODEL
from maxsim.errors import InvalidInputError
from maxsim.io.chunking import count_tokens, split_documents, split_passages

ABSTRACTS = [json.loads(line)["text"] for line in (CRANFIELD / "corpus.jsonl").open()][:60]
MARKDOWN = "# Notes\n\n" + "\n\n".join(f"## Part {i}\n\n{text}" for i, text in enumerate(ABSTRACTS[:25]))


@pytest.fixture(scope="module")
def wordpiece():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINY_MODEL))


@pytest.fixture(scope="module")
def byte_bpe():
    """A byte-level BPE tokenizer (GPT-2 / ModernBERT family), trained here on Cranfield."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(ABSTRACTS, vocab_size=600, min_frequency=2, show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)


def check_invariants(text, spans, tokenizer, max_tokens):
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert s1 < s2 and s2 <= e1  # in order, no gap: every character is in some passage
    for start, end in spans:
        assert end > start
        assert count_tokens([text[start:end]], tokenizer)[0] <= max_tokens


@pytest.mark.parametrize("name", ["wordpiece", "byte_bpe"])
@pytest.mark.parametrize("max_tokens, overlap", [(254, 32), (64, 0), (40, 16)])
def test_invariants_on_markdown(request, name, max_tokens, overlap):
    tokenizer = request.getfixturevalue(name)
    spans = split_passages(MARKDOWN, tokenizer, max_tokens, overlap)
    assert len(spans) > count_tokens([MARKDOWN], tokenizer)[0] // max_tokens
    check_invariants(MARKDOWN, spans, tokenizer, max_tokens)


def test_a_text_that_fits_is_one_passage(wordpiece):
    text = "  A short note.\n"
    assert split_passages(text, wordpiece, 254) == [(0, len(text))]
    assert split_documents([text, MARKDOWN], wordpiece, 254)[0] == [(0, len(text))]


def test_cuts_at_sentence_or_line_ends(wordpiece):
    def share_at_boundaries(spans):
        ends = [MARKDOWN[:end].rstrip(" \t").endswith((".", "\n")) for _, end in spans[:-1]]
        return sum(ends) / len(ends)

    near = share_at_boundaries(split_passages(MARKDOWN, wordpiece, 200, overlap=0, lookback=48))
    hard = share_at_boundaries(split_passages(MARKDOWN, wordpiece, 200, overlap=0, lookback=0))
    assert near >= 0.8 and hard < 0.5, (near, hard)  # a window without a boundary near its end is cut at a word


def test_overlap_repeats_tokens(wordpiece):
    spans = split_passages(MARKDOWN, wordpiece, 128, overlap=32, lookback=16)
    for (_, e1), (s2, _) in zip(spans, spans[1:]):
        shared = count_tokens([MARKDOWN[s2:e1]], wordpiece)[0]
        assert 32 <= shared <= 32 + 16 + 2, shared  # moved back at most ``lookback`` to a sentence start
    assert len(spans) > len(split_passages(MARKDOWN, wordpiece, 128, overlap=0, lookback=16))


def test_one_long_word_and_no_spaces(wordpiece, byte_bpe):
    for text in ("x" * 3000, "supercalifragilistic" * 200, "é" * 500 + "🙂" * 300):
        for tokenizer in (wordpiece, byte_bpe):
            spans = split_passages(text, tokenizer, 50, 10)
            check_invariants(text, spans, tokenizer, 50)


PIECES = st.sampled_from(list("ab .\n!?é") + ["word ", "Wing. ", "\n\n"])


@settings(max_examples=40, deadline=None)
@given(st.lists(PIECES, min_size=1, max_size=300).map("".join),
       st.integers(8, 60), st.integers(0, 7))
def test_property_invariants(wordpiece, text, max_tokens, overlap):
    spans = split_passages(text, wordpiece, max_tokens, overlap)
    if text.strip():
        check_invariants(text, spans, wordpiece, max_tokens)
    else:
        assert spans == [(0, len(text))]


@pytest.mark.parametrize("kwargs, words", [
    ({"max_tokens": 0}, "max_tokens must be an int >= 1"),
    ({"max_tokens": 10, "overlap": 10}, "overlap (10) must be smaller than max_tokens (10)"),
    ({"max_tokens": 10, "overlap": -1}, "overlap must be an int >= 0"),
    ({"max_tokens": 10, "lookback": 1.5}, "lookback must be an int"),
])
def test_bad_sizes_are_named(wordpiece, kwargs, words):
    with pytest.raises(InvalidInputError, match=re.escape(words)):
        split_passages("text", wordpiece, **kwargs)
