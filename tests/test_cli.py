"""The ``maxsim`` command line end to end on small collections (tiny model), bad paths and malformed files."""

import csv
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import MODELS
from maxsim.cli import app

TINY = str(MODELS / "st6-tiny-bert")
DOCS = [
    ("wing", "Lift on a swept wing at transonic speed, measured in a wind tunnel."),
    ("heat", "Transient heat conduction in composite slabs with a triangular heat rate."),
    ("shell", "Buckling of thin cylindrical shells under axial compression."),
    ("boundary", "Boundary layer transition on a flat plate at high Mach number."),
    ("nozzle", "Flow of a compressible gas through an axially symmetric nozzle."),
    ("flutter", "Flutter of a panel in supersonic flow and its damping."),
]


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text or of a matched term (``"slabs"``, ``"wing→wings"``)."""
    return re.findall(r"\w+", text.lower())


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def corpus_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    return write_jsonl(path, [{"_id": i, "text": t, "year": 1960 + n} for n, (i, t) in enumerate(DOCS)])


@pytest.fixture(scope="module")
def built_index(corpus_jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "index"
    result = invoke("index", corpus_jsonl, "--model", TINY, "--output", out)
    assert result.exit_code == 0, result.output
    assert f"indexed {len(DOCS)} documents" in result.output
    assert "token vectors" in result.output and "on disk" in result.output
    return out


def search_json(index, query, *options):
    result = invoke("search", index, query, "--json", *options)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_index_then_search_json(built_index):
    hits = search_json(built_index, "heat conduction in slabs", "--k", 3)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert {h["id"] for h in hits} <= {i for i, _ in DOCS}
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    texts = dict(DOCS)
    for hit in hits:  # the excerpt is a piece of the document's own text
        assert hit["excerpt"].strip("…") in texts[hit["id"]]
        assert hit["matched"], hit
        assert hit["metadata"]["year"] >= 1960
    every = search_json(built_index, "heat conduction in slabs", "--k", len(DOCS))
    assert sorted(h["id"] for h in every) == sorted(i for i, _ in DOCS)
    for hit in every:  # each term: a query word, bare if this document holds it, else with the word it picked here
        assert all(words_of(term)[-1] in words_of(texts[hit["id"]]) for term in hit["matched"]), hit
    wing = next(h for h in every if h["id"] == "wing")  # holds none of the query's words: none is listed bare
    assert wing["matched"] and not {"heat", "conduction", "composite", "slabs"} & set(wing["matched"])


def test_search_table_and_hybrid(built_index):
    result = invoke("search", built_index, "buckling of cylindrical shells", "--k", 2, "--hybrid")
    assert result.exit_code == 0, result.output
    assert "excerpt" in result.output and "matched" in result.output
    assert "shell" in result.output  # BM25 puts the only document with these words first
    hybrid = search_json(built_index, "buckling of cylindrical shells", "--k", 2, "--hybrid")
    assert hybrid[0]["id"] == "shell"


def test_index_text_folder_csv_and_beir(tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(DOCS[0][1])
    (folder / "sub" / "b.md").write_text(DOCS[1][1])
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    table = tmp_path / "docs.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "text"])
        writer.writerows([[i, f"title {i}", t] for i, t in DOCS[:3]])
    beir = tmp_path / "beir"
    beir.mkdir()
    write_jsonl(beir / "corpus.jsonl", [{"_id": i, "title": "", "text": t} for i, t in DOCS[:2]])
    expected = {folder: {"a.txt", "sub/b.md"}, table: {i for i, _ in DOCS[:3]}, beir: {i for i, _ in DOCS[:2]}}
    for source, ids in expected.items():
        out = tmp_path / f"index-{source.name}"
        result = invoke("index", source, "--model", TINY, "--output", out, "--no-hybrid")
        assert result.exit_code == 0, result.output
        assert {h["id"] for h in search_json(out, "lift on a wing", "--k", 10)} == ids
    csv_hit = search_json(tmp_path / "index-docs.csv", "lift", "--k", 1)[0]
    assert csv_hit["metadata"]["title"].startswith("title ")


def test_encode_writes_token_vectors(corpus_jsonl, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "vectors.safetensors"
    result = invoke("encode", corpus_jsonl, "--model", TINY, "--output", out, "--task", "query")
    assert result.exit_code == 0, result.output
    with safe_open(str(out), "np") as f:
        embeddings, offsets, meta = f.get_tensor("embeddings"), f.get_tensor("offsets"), f.metadata()
    assert json.loads(meta["ids"]) == [i for i, _ in DOCS] and meta["task"] == "query"
    assert offsets.shape == (len(DOCS) + 1,) and offsets[0] == 0 and offsets[-1] == len(embeddings)
    from maxsim import MultiVectorEncoder

    expected = MultiVectorEncoder(TINY, device="cpu").encode_query([DOCS[2][1]])[0]
    np.testing.assert_allclose(embeddings[offsets[2]:offsets[3]], expected, atol=1e-5)


def test_quickstart_on_a_small_model(tmp_path):
    result = invoke("quickstart", "--model", TINY, "--output", tmp_path / "qs", "--k", 2)
    assert result.exit_code == 0, result.output
    assert "indexed 400 Cranfield abstracts" in result.output
    assert result.output.count("query ") == 5 and "nDCG@10 over these 5 queries" in result.output
    assert (tmp_path / "qs" / "retriever.json").is_file()


@pytest.mark.parametrize("lines, where, words", [
    (['{"_id": "a", "text": "ok"}', '{"_id": "b", "text": '], ":2", "not valid JSON"),
    (['{"_id": "a", "text": "ok"}', "", '{"text": "no id"}'], ":3", "missing id"),
    (['{"_id": "a", "text": "ok"}', '{"_id": "a", "text": "again"}'], ":2", "already used"),
    (['{"_id": "a", "body": "no text"}'], ":1", "'text' is missing"),
    (['["not", "an", "object"]'], ":1", "expected a JSON object"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, lines, where, words):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    commands = (["index", bad, "--output", tmp_path / "out"], ["encode", bad, "--output", tmp_path / "v.safetensors"])
    for command in commands:
        result = invoke(*command, "--model", TINY)
        assert result.exit_code != 0
        assert f"bad.jsonl{where}" in result.output and words in result.output, result.output
    assert not (tmp_path / "out").exists()  # nothing is created from a malformed file


def test_malformed_csv_names_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\na,fine\nb,too,many,fields\n")
    result = invoke("index", bad, "--model", TINY, "--output", tmp_path / "out")
    assert result.exit_code != 0 and "bad.csv:3" in result.output and "more fields" in result.output


def test_bad_paths_and_arguments(tmp_path, built_index, corpus_jsonl):
    missing = tmp_path / "nowhere"
    cases = [
        (["index", missing, "--model", TINY, "--output", tmp_path / "o1"], "does not exist"),
        (["index", corpus_jsonl, "--model", TINY, "--output", built_index], "is not empty"),
        (["index", corpus_jsonl, "--model", str(missing), "--output", tmp_path / "o2"], "nowhere"),
        (["index", corpus_jsonl, "--model", TINY, "--output", tmp_path / "o3", "--index", "nope"], "index must be"),
        (["search", missing, "query"], "not a retriever folder"),
        (["search", built_index, "   "], "empty"),
        (["encode", corpus_jsonl, "--model", TINY, "--output", tmp_path / "v.npy"], ".safetensors"),
        (["serve", missing], "not a retriever folder"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((["index", empty, "--model", TINY, "--output", tmp_path / "o4"], "holds no documents"))
    for args, words in cases:
        result = invoke(*args)
        assert result.exit_code != 0, args
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_evaluate_hybrid_scores_the_fused_ranking(tmp_path):
    beir = tmp_path / "tiny"
    beir.mkdir()
    write_jsonl(beir / "corpus.jsonl", [{"_id": i, "title": "", "text": t} for i, t in DOCS])
    write_jsonl(beir / "queries.jsonl", [{"_id": f"q{n}", "text": t} for n, (_, t) in enumerate(DOCS)])
    (beir / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                    + "".join(f"q{n}\t{i}\t1\n" for n, (i, _) in enumerate(DOCS)))
    result = invoke("evaluate", TINY, "--data", beir, "--hybrid")
    assert result.exit_code == 0, result.output
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in result.stdout.splitlines()
            if line.startswith("| ") and "@" in line}
    assert rows and all(name.startswith("Hybrid_") for name in rows)
    assert float(rows["Hybrid_ndcg@10"]) > 0.9  # each query is its document's text: BM25 ranks it first
