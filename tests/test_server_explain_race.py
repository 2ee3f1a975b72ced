"""Upserts of one document racing ``/explain`` and the web page's calls (``/search``, then ``/explain`` for
each hit) on a real server, for a retriever folder and a sharded collection: every answer is a 200 whose
spans all index the text of that same answer (one version, never the other), and the keep-alive
connections stay open (an error answer would have closed them)."""

import http.client
import json
import threading

import pytest

from conftest import TINY_MODEL
from maxsim.search import Retriever
from maxsim.server import LiveRetriever, create_app
from test_server import serve_in_thread

QUERY = "heat transfer in boundary layers"
VERSIONS = ["Wing lift at low speed.",
            "Heat transfer in laminar boundary layers over heated flat plates, measured at Mach 2 and Mach 3; "
            "the boundary layer thickens downstream and the heat flux falls. " * 3]
OTHERS = [f"Note {i} on heat flux, boundary layers and shock waves in test {i}." for i in range(6)]
ROUNDS = 12


def build(kind: str, folder, model):
    """A folder or a 2-shard collection holding OTHERS and the racing document."""
    if kind == "sharded":
        from maxsim.distributed import ShardedRetriever

        collection = ShardedRetriever.create(folder, 2, model, model_name=str(TINY_MODEL), hybrid=True)
    else:
        collection = Retriever.create(folder, model, model_name=str(TINY_MODEL), hybrid=True)
    with collection:
        collection.add(OTHERS + [VERSIONS[0]], ids=[f"n{i}" for i in range(len(OTHERS))] + ["race"])
    return folder


def post(connection: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, dict]:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def consistent(explanation: dict) -> list[str]:
    """Problems of one /explain answer: spans outside its text, tokens that are not the text at their
    span, a passage or excerpt not cut from it."""
    text, problems = explanation["text"], []
    if explanation["id"] == "race" and text not in VERSIONS:
        problems.append(f"text of no version: {text[:40]!r}")
    for token, span in zip(explanation["document_tokens"], explanation["document_spans"]):
        if span is not None and text[span[0]: span[1]].lower() != token.lstrip("#").lower():
            problems.append(f"token {token!r} at {span} reads {text[span[0]: span[1]]!r}")
    passage = explanation["passage"]
    if text[passage["start"]: passage["end"]] != passage["text"]:
        problems.append("passage not cut from the text")
    excerpt = explanation["excerpt"]
    if not all(0 <= h["start"] < h["end"] <= len(excerpt["text"]) for h in excerpt["highlights"]):
        problems.append("highlight outside the excerpt")
    return problems


def reader(base: str, page: bool, stop: threading.Event, problems: list, counts: list) -> None:
    """One keep-alive connection asking /explain (or the page's /search then /explain per hit) until ``stop``."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    connection.connect()
    socket = connection.sock
    while not stop.is_set():
        ids = ["race"]
        if page:
            status, answer = post(connection, "/search", {"queries": [QUERY], "k": 3, "hybrid": True})
            problems += [f"/search {status}"] if status != 200 else []
            ids = [hit["id"] for hit in answer.get("results", [[]])[0]]
            problems += [f"hit {h['id']}: passage not cut from its text" for h in answer.get("results", [[]])[0]
                         if h["text"][h["passage"]["start"]: h["passage"]["end"]] != h["passage"]["text"]]
        for doc_id in ids:
            status, answer = post(connection, "/explain", {"query": QUERY, "id": doc_id})
            problems += [f"/explain {status}: {answer}"] if status != 200 else consistent(answer)
            counts.append(answer.get("text") == VERSIONS[1])
        if connection.sock is not socket:
            problems.append("the server closed the keep-alive connection")
    connection.close()


@pytest.mark.parametrize("kind", ["folder", "sharded"])
def test_explain_and_search_never_mix_two_versions(tmp_path, tiny_model, kind):
    live = LiveRetriever(build(kind, tmp_path / "c", tiny_model), tiny_model, readers=2)
    problems, counts, stop = [], [], threading.Event()
    try:
        with serve_in_thread(create_app(live)) as base:
            threads = [threading.Thread(target=reader, args=(base, page, stop, problems, counts)) for page in (0, 1)]
            for thread in threads:
                thread.start()
            host, port = base.removeprefix("http://").split(":")
            writer = http.client.HTTPConnection(host, int(port), timeout=120)
            for i in range(ROUNDS):
                writer.request("PUT", "/documents/race", json.dumps({"text": VERSIONS[(i + 1) % 2]}),
                               {"Content-Type": "application/json"})
                response = writer.getresponse()
                assert response.status == 200, response.read()
                response.read()
            stop.set()
            for thread in threads:
                thread.join(300)
    finally:
        live.close()
    assert problems == [], problems[:5]
    assert any(counts) and not all(counts), "the readers did not see both versions"  # the race happened
