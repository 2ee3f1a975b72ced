"""Reranking scores a long candidate the way search scores a document: split into passages, the best one
giving the score and reported — in Python, in ``maxsim rerank`` and in ``POST /rerank`` (real server, Cohere's
request shape). Before, a candidate was cut at the model's length, so a match past it changed nothing.
The embedded default model (MiniLM, 254-token passages): a random tiny model would not tell a match."""

import json

import httpx
import pytest
from typer.testing import CliRunner

from maxsim.cli import app as cli
from maxsim.search import Retriever
from maxsim.search.rerank import rerank
from maxsim.server import LiveRetriever, create_app
from test_server import serve_in_thread

QUERY = "buckling of thin cylindrical shells under axial compression"
FILLER = " ".join(f"Weather report {i}: rain, wind from the west and mild evenings." for i in range(60))  # ~700 tokens
LATE = FILLER + " Thin cylindrical shells buckle under axial compression: the buckling of thin shells."


def test_a_late_match_changes_the_score_and_its_passage_is_reported(default_model):
    model = default_model
    assert len(model.tokenizer(FILLER, add_special_tokens=False)["input_ids"]) > 3 * 254  # several passages long
    late, filler = rerank(QUERY, [LATE, FILLER], model=model)[0]
    assert late["id"] == 0 and late["score"] > filler["score"] + 1.0
    start, end = late["passage"]["start"], late["passage"]["end"]
    assert end == len(LATE) and start > 2000 and "cylindrical shells buckle" in LATE[start:end]
    with pytest.warns(UserWarning, match="were cut there"):
        cut = {hit["id"]: hit["score"] for hit in rerank(QUERY, [LATE, FILLER], model=model, passages=False)[0]}
    assert cut[0] == pytest.approx(cut[1], abs=1e-5)  # cut at the model's length, the match was never read
    first_only = rerank(QUERY, [LATE, FILLER], model=model, max_tokens=100)[0]
    assert first_only[0]["score"] == pytest.approx(first_only[1]["score"], abs=1e-5)


def test_rerank_scores_and_passages_equal_search(default_model, tmp_path):
    candidates = [LATE, FILLER, "A short note on shells."]
    with Retriever.create(tmp_path / "r", default_model, model_name="default", hybrid=False) as r:
        r.add(candidates, ids=["late", "filler", "short"])
        found = {hit.id: hit for hit in r.search(QUERY, k=3)[0]}
    for hit in rerank(QUERY, candidates, documents_ids=["late", "filler", "short"], model=default_model)[0]:
        assert hit["score"] == pytest.approx(found[hit["id"]].score, abs=1e-3)  # the index stores float16
        passage = found[hit["id"]].passage
        assert hit["passage"] == {"index": passage.index, "start": passage.start, "end": passage.end}


def test_cli_reports_the_best_passage(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"query": QUERY, "documents": [FILLER, LATE]}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["rerank", str(source), "--model", "default", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    best = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))["results"][0]
    assert best["index"] == 1 and best["passage"]["end"] == len(LATE) and best["passage"]["start"] > 2000


def test_post_rerank_takes_cohere_requests_on_a_real_server(default_model, tmp_path):
    with Retriever.create(tmp_path / "r", default_model, model_name="default", hybrid=False) as r:
        r.add(["one stored document"], ids=["only"])
    live = LiveRetriever(tmp_path / "r", default_model, readers=1)
    expected = rerank(QUERY, [FILLER, LATE, "shells"], model=default_model)[0]
    try:
        with serve_in_thread(create_app(live)) as base:
            body = {"model": "rerank-v3.5", "query": QUERY, "documents": [{"text": FILLER}, LATE, "shells"],
                    "top_n": 2, "return_documents": True}
            answer = httpx.post(f"{base}/rerank", json=body, timeout=300)
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            assert [r["index"] for r in results] == [hit["id"] for hit in expected[:2]]
            assert [r["relevance_score"] for r in results] == pytest.approx([h["score"] for h in expected[:2]],
                                                                            abs=1e-5)
            assert results[0]["passage"] == expected[0]["passage"]
            assert [r["document"]["text"] for r in results] == [[FILLER, LATE, "shells"][r["index"]] for r in results]
            cut = httpx.post(f"{base}/rerank", json={**body, "max_tokens_per_doc": 100, "top_n": None,
                                                     "return_documents": False}, timeout=300).json()["results"]
            scores = {r["index"]: r["relevance_score"] for r in cut}
            assert scores[0] == pytest.approx(scores[1], abs=1e-5) and "document" not in cut[0]
            bad = httpx.post(f"{base}/rerank", json={"query": QUERY, "documents": [{"text": "x", "title": "y"}]})
            assert bad.status_code == 422
    finally:
        live.close()
