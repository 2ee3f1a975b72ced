"""``POST /rerank`` (a real server) and ``maxsim rerank`` (the real command) return the order ``maxsim.rerank``
gives on the same input."""

import json

import httpx
import pytest
from typer.testing import CliRunner

from conftest import TINY_MODEL
from maxsim.cli import app as cli
from maxsim.search import Retriever
from maxsim.search.rerank import rerank
from maxsim.server import Limits, LiveRetriever, create_app
from test_server import serve_in_thread

TINY = str(TINY_MODEL)
KEY = "rerank-key"
QUERIES = ["heat transfer in boundary layers", "buckling of thin cylindrical shells"]
DOCUMENTS = [
    ["A note on supersonic wings.", "Heat transfer rates in a laminar boundary layer.", "Shells under axial load.",
     "Boundary layer transition and heat flux on a flat plate."],
    ["Shells buckle under axial load.", "Thin cylinders under external pressure buckle early.", "Heat flux.",
     "Vibration of thin cylindrical shells."],
]


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rerank") / "index"
    with Retriever.create(folder, tiny_model, index="exact", hybrid=False, model_name=TINY) as retriever:
        retriever.add(["one stored document"], ids=["only"])
    live = LiveRetriever(folder, tiny_model, readers=2)
    limits = Limits(max_k=5, max_text_chars=200)
    with serve_in_thread(create_app(live, api_key=KEY, limits=limits)) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as c:
            yield c
    live.close()


@pytest.fixture(scope="module")
def expected(tiny_model):
    return rerank(QUERIES, DOCUMENTS, model=tiny_model)


def test_post_rerank_matches_python(client, expected):
    for query, documents, hits in zip(QUERIES, DOCUMENTS, expected):
        answer = client.post("/rerank", json={"query": query, "documents": documents, "top_n": 3})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["index"] for r in results] == [h["id"] for h in hits[:3]]
        assert [r["relevance_score"] for r in results] == pytest.approx([h["score"] for h in hits[:3]], rel=1e-5)
    full = client.post("/rerank", json={"query": QUERIES[0], "documents": DOCUMENTS[0], "return_documents": True,
                                        "model": "ignored"}).json()["results"]
    assert len(full) == 4 and [r["document"]["text"] for r in full] == [DOCUMENTS[0][r["index"]] for r in full]


@pytest.mark.parametrize("body, status, words", [
    ({"query": "q", "documents": ["d"] * 6}, 413, "6 documents"),
    ({"query": "q", "documents": ["d", "x" * 201]}, 413, "document 1 has 201 characters"),
    ({"query": "q", "documents": []}, 422, ""),
    ({"query": "q", "documents": ["d"], "top_n": 0}, 422, ""),
    ({"query": "q", "documents": ["d"], "bogus": 1}, 422, ""),
])
def test_post_rerank_checks_the_request(client, body, status, words):
    answer = client.post("/rerank", json=body)
    assert answer.status_code == status, answer.text
    assert words in json.dumps(answer.json())


def test_post_rerank_needs_the_key(client):
    answer = client.post("/rerank", json={"query": "q", "documents": ["d"]}, headers={"Authorization": "Bearer no"})
    assert answer.status_code == 401


def run_cli(*args):
    result = CliRunner().invoke(cli, ["rerank", *map(str, args), "--model", TINY, "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_cli_jsonl_matches_python(tmp_path, expected):
    source = tmp_path / "in.jsonl"
    rows = [{"query": QUERIES[0], "documents": DOCUMENTS[0]},
            {"query_id": "q2", "query": QUERIES[1], "documents": [{"id": f"d{j}", "text": t}
                                                                   for j, t in enumerate(DOCUMENTS[1])]}]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    first, second = run_cli(source)
    assert [r["index"] for r in first["results"]] == [h["id"] for h in expected[0]]
    assert [r["rank"] for r in first["results"]] == [1, 2, 3, 4] and "query_id" not in first
    assert second["query_id"] == "q2" and [r["id"] for r in second["results"]] == [f"d{h['id']}" for h in expected[1]]
    assert [r["score"] for r in second["results"]] == pytest.approx([h["score"] for h in expected[1]], rel=1e-5)


def test_cli_tsv_both_layouts_and_k(tmp_path, expected):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{q}\t{d}\n" for q, docs in zip(QUERIES, DOCUMENTS) for d in docs), encoding="utf-8")
    ranked = run_cli(pairs, "--k", 2)
    assert [[r["index"] for r in row["results"]] for row in ranked] == [[h["id"] for h in e[:2]] for e in expected]
    marco = tmp_path / "top1000.tsv"
    marco.write_text("".join(f"q{i}\tp{i}-{j}\t{q}\t{d}\n" for i, (q, docs) in enumerate(zip(QUERIES, DOCUMENTS))
                             for j, d in enumerate(docs)), encoding="utf-8")
    output = tmp_path / "out" / "ranked.jsonl"
    run_cli(marco, "--output", output)
    ranked = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["query_id"] for row in ranked] == ["q0", "q1"]
    assert [r["id"] for r in ranked[1]["results"]] == [f"p1-{h['id']}" for h in expected[1]]


@pytest.mark.parametrize("name, content, code, words", [
    ("bad.tsv", "only one field\n", 2, "bad.tsv:1: 1 tab-separated fields"),
    ("bad.jsonl", '{"query": "q"}\n', 2, "bad.jsonl:1: expected"),
    ("bad.csv", "q,d\n", 2, "unknown input kind '.csv'"),
])
def test_cli_bad_input_is_one_line(tmp_path, name, content, code, words):
    (tmp_path / name).write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["rerank", str(tmp_path / name), "--model", TINY])
    assert result.exit_code == code and words in result.output, result.output
    missing = CliRunner().invoke(cli, ["rerank", str(tmp_path / "missing.jsonl")])
    assert missing.exit_code == 3 and "missing.jsonl does not exist" in missing.output
