"""`index="auto"`: the index kind chosen from the collection's size (Python, sharded, `maxsim index`)."""

import json

import pytest
from typer.testing import CliRunner

from conftest import TINY_MODEL
from maxsim.cli import app
from maxsim.distributed import ShardedRetriever
from maxsim.errors import InvalidInputError
from maxsim.index import choose_kind, estimate_tokens
from maxsim.index.defaults import CHARS_PER_TOKEN, EXACT_LIMIT_VALUES, PAGE_TOKENS
from maxsim.search import Retriever

LIMIT_TOKENS_32 = EXACT_LIMIT_VALUES // 32  # the tiny model's vectors have 32 dims


def test_estimate_counts_characters_and_pages_over_the_pool_factor():
    assert estimate_tokens(["a" * 400, "b" * 40]) == 440 // CHARS_PER_TOKEN
    assert estimate_tokens(pages=3, pool_factor=3) == PAGE_TOKENS
    assert estimate_tokens(["x" * 800], pool_factor=2) == 800 // CHARS_PER_TOKEN // 2


def test_choose_kind_switches_at_the_limit_and_says_why():
    below, why_below = choose_kind(0, LIMIT_TOKENS_32 - 1, 32)
    above, why_above = choose_kind(0, LIMIT_TOKENS_32, 32)
    assert (below, above) == ("exact", "plaid")
    assert "exact scan" in why_below and "PLAID" in why_above


@pytest.mark.parametrize("tokens, params, kind", [(1_000, {}, "exact"), (LIMIT_TOKENS_32 * 2, {}, "plaid"),
                                                   (1_000, {"nbits": 2}, "plaid"),
                                                   (LIMIT_TOKENS_32 * 2, {"chunk_tokens": 4096}, "exact")])
def test_retriever_create_auto(tmp_path, tiny_model, tokens, params, kind):
    with Retriever.create(tmp_path / "r", tiny_model, index="auto", expected_tokens=tokens, hybrid=False,
                          **params) as r:
        assert r.stats()["kind"] == kind


def test_auto_without_a_size_is_refused_naming_the_fix(tmp_path, tiny_model):
    with pytest.raises(InvalidInputError, match="expected_tokens"):
        Retriever.create(tmp_path / "r", tiny_model, index="auto")
    assert not (tmp_path / "r" / "retriever.json").exists()


def test_sharded_auto_decides_per_shard(tmp_path, tiny_model):
    # twice the limit over 4 shards: half the limit each, so every shard is exact
    with ShardedRetriever.create(tmp_path / "s", 4, tiny_model, index="auto", expected_tokens=LIMIT_TOKENS_32 * 2,
                                 hybrid=False) as s:
        assert s.stats()["kind"] == "exact"


def test_maxsim_index_without_index_chooses_and_says_why(tmp_path):
    rows = [{"id": f"d{i}", "text": f"Note {i} on boundary layers and swept wings."} for i in range(5)]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "idx"
    result = CliRunner().invoke(app, ["index", str(tmp_path / "c.jsonl"), "-o", str(out), "-m", str(TINY_MODEL),
                                      "--no-hybrid"])
    assert result.exit_code == 0, result.output
    assert "index: exact (chosen by auto: about" in result.output
    with Retriever.open(out) as r:
        assert r.stats()["kind"] == "exact"
    plaid = CliRunner().invoke(app, ["index", str(tmp_path / "c.jsonl"), "-o", str(tmp_path / "p"), "-m",
                                     str(TINY_MODEL), "--no-hybrid", "--nbits", "2", "--n-centroids", "4"])
    assert plaid.exit_code == 0, plaid.output
    assert "index: plaid (chosen by auto: plaid parameters given (n_centroids, nbits))" in plaid.output
