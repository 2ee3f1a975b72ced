"""The HTTP service under a real uvicorn on 127.0.0.1 (random free port): round trips, auth, limits,
concurrent reads during a write, and ``maxsim serve`` as a subprocess."""

import concurrent.futures
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import torch

from conftest import MODELS
from maxsim.errors import InvalidInputError
from maxsim.io import read_corpus
from maxsim.search import Retriever
from maxsim.server import Limits, LiveRetriever, create_app

TINY = str(MODELS / "st6-tiny-bert")
SAMPLE = read_corpus(os.path.join(os.path.dirname(__file__), "..", "src", "maxsim", "data", "cranfield"))
KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMITS = Limits(max_batch=8, max_text_chars=3000, max_document_chars=3000, max_body_bytes=40_000)


def url(client, path):
    """Absolute URL of ``path`` on ``client``'s server (for requests made without the key)."""
    return str(client.base_url).rstrip("/") + path


def build_index(folder, model, n=40):
    """A retriever folder of the first ``n`` shipped Cranfield abstracts (hybrid, exact)."""
    with Retriever.create(folder, model, index="exact", hybrid=True, model_name=TINY) as retriever:
        retriever.add(SAMPLE.texts[:n], ids=SAMPLE.ids[:n], metadata=SAMPLE.metadata[:n])
    return folder


@contextlib.contextmanager
def serve_in_thread(app, timeout=30.0):
    """Run ``app`` under uvicorn on 127.0.0.1 and a free port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@pytest.fixture(scope="module")
def service(tiny_model, tmp_path_factory):
    live = LiveRetriever(build_index(tmp_path_factory.mktemp("srv") / "index", tiny_model), tiny_model, readers=3)
    with serve_in_thread(create_app(live, api_key=KEY, limits=LIMITS)) as url:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            yield client
    live.close()


def test_health_is_open_and_reports(service):
    response = httpx.get(url(service, "/health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "documents": 40, "auth": True, "modality": "text"}


def test_search_add_get_delete_round_trip(service):
    results = service.post("/search", json={"queries": ["heat conduction in slabs", "wing flutter"], "k": 3}).json()
    assert [len(hits) for hits in results["results"]] == [3, 3]
    for hit in results["results"][0]:
        assert set(hit) == {"id", "score", "text", "metadata", "passage"} and hit["id"] in SAMPLE.ids[:40]
        passage = hit["passage"]
        assert set(passage) == {"index", "start", "end", "text"}
        assert hit["text"][passage["start"]:passage["end"]] == passage["text"]
    assert results["omitted"] == 0
    text = "A brand new note on hypersonic heat shields."
    added = service.post("/documents", json={"documents": [{"id": "note-1", "text": text, "metadata": {"tag": "x"}}]})
    assert added.status_code == 201 and added.json() == {"ids": ["note-1"], "documents": 41}
    assert service.get("/documents/note-1").json() == {"id": "note-1", "text": text, "metadata": {"tag": "x"}}
    hits = service.post("/search", json={"queries": [text], "k": 41}).json()["results"][0]
    assert "note-1" in [h["id"] for h in hits]
    generated = service.post("/documents", json={"documents": [{"text": "no id given"}]}).json()["ids"]
    assert len(generated) == 1 and service.get(f"/documents/{generated[0]}").status_code == 200
    for doc_id in ("note-1", generated[0]):
        assert service.delete(f"/documents/{doc_id}").status_code == 200
        assert service.get(f"/documents/{doc_id}").status_code == 404
    hits = service.post("/search", json={"queries": [text], "k": 50}).json()["results"][0]
    assert "note-1" not in [h["id"] for h in hits] and len(hits) == 40
    assert service.get("/stats").json()["documents"] == 40


def test_hybrid_search_and_explain(service):
    def rank_of_5(hybrid):  # "5": the one abstract on heat conduction in composite slabs, BM25's first
        body = {"queries": ["heat conduction in composite slabs"], "k": 40, "hybrid": hybrid}
        return [h["id"] for h in service.post("/search", json=body).json()["results"][0]].index("5")

    assert rank_of_5(hybrid=True) < rank_of_5(hybrid=False)  # the tiny model alone ranks it low
    explanation = service.post("/explain", json={"query": "heat conduction in composite slabs", "id": "5"}).json()
    assert len(explanation["alignment"]) == len(explanation["query_tokens"])
    assert explanation["score"] == pytest.approx(sum(step["score"] for step in explanation["alignment"]), rel=1e-5)
    assert explanation["text"] == SAMPLE.texts[SAMPLE.ids.index("5")]
    excerpt, passage = explanation["excerpt"], explanation["passage"]
    assert excerpt["highlights"] and all(0 <= h["start"] < h["end"] <= len(excerpt["text"])
                                         for h in excerpt["highlights"])
    assert passage["text"] == explanation["text"][passage["start"]: passage["end"]]
    other = service.post("/explain", json={"query": "heat conduction in composite slabs", "id": "1"}).json()
    for answer in (explanation, other):  # a query word, bare if the document holds it, else with the word it picked
        words = re.findall(r"\w+", answer["text"].lower())
        assert all(re.findall(r"\w+", term.lower())[-1] in words for term in answer["matched"]), answer["matched"]
    assert "slab" not in other["text"] and not {"slabs", "composite", "conduction"} & set(other["matched"])


def test_search_with_excerpts_answers_what_explain_shows(service):
    """``excerpts``: per hit the passage, excerpt and matched terms /explain gives, in one request;
    without it no ``excerpts`` at all."""
    query = "heat conduction in composite slabs"
    body = {"queries": [query, "wing flutter"], "k": 4, "hybrid": True}
    plain = service.post("/search", json=body).json()
    answer = service.post("/search", json={**body, "excerpts": True}).json()
    assert plain["excerpts"] is None and answer["results"] == plain["results"]
    assert [len(x) for x in answer["excerpts"]] == [4, 4]
    for q, hits, shown in zip(body["queries"], answer["results"], answer["excerpts"]):
        for hit, entry in zip(hits, shown):
            explanation = service.post("/explain", json={"query": q, "id": hit["id"]}).json()
            assert entry["excerpt"] == explanation["excerpt"] and entry["matched"] == explanation["matched"]
            assert entry["passage"] == {key: explanation["passage"][key] for key in ("index", "start", "end")}
    assert service.post("/search", json={**body, "excerpts": "yes"}).status_code == 422


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}])
def test_missing_or_wrong_key_is_401(service, headers):
    for method, path, body in [("POST", "/search", {"queries": ["x"]}), ("GET", "/stats", None),
                               ("GET", "/documents/1", None), ("DELETE", "/documents/1", None),
                               ("POST", "/documents", {"documents": [{"text": "x"}]})]:
        response = httpx.request(method, url(service, path), json=body, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert "API key" in response.json()["detail"]
    assert service.get("/documents/1").status_code == 200  # nothing was deleted


def test_limits_answer_413_and_validation_422(service):
    too_many = service.post("/search", json={"queries": ["q"] * 9})
    too_long = service.post("/documents", json={"documents": [{"id": "big", "text": "word " * 700}]})
    body = service.post("/documents", json={"documents": [{"text": "x" * 2000}] * 25})  # ~50 kB > 40 kB
    streamed = service.post("/documents", content=(b"x" * 1000 for _ in range(50)),
                            headers={"Content-Type": "application/json"})
    for response, words in [(too_many, "9 queries"), (too_long, "3500 characters"), (body, "40000 bytes"),
                            (streamed, "40000 bytes")]:
        assert response.status_code == 413, response.text
        assert words in response.json()["detail"]
    assert service.get("/documents/big").status_code == 404
    for bad in [{"queries": []}, {"queries": "not a list"}, {"queries": ["x"], "k": 0}, {"queries": ["x"], "bogus": 1}]:
        assert service.post("/search", json=bad).status_code == 422, bad
    assert service.post("/search", json={"queries": ["   "]}).status_code == 422
    assert service.post("/search", json={"queries": ["x"], "k": 5000}).status_code == 422
    half = service.post("/documents", json={"documents": [{"id": "a1", "text": "x"}, {"text": "y"}]})
    assert half.status_code == 422 and "every document an id" in half.json()["detail"]
    duplicate = service.post("/documents", json={"documents": [{"id": "1", "text": "again"}]})
    assert duplicate.status_code == 409 and "'1'" in duplicate.json()["detail"]
    assert service.delete("/documents/no-such-id").status_code == 404
    assert service.post("/explain", json={"query": "x", "id": "no-such-id"}).status_code == 404


def test_searches_succeed_while_documents_are_added(service):
    new = [{"id": f"c{i}", "text": SAMPLE.texts[100 + i]} for i in range(8)]
    done, add_window = [], []

    def search(i):
        response = service.post("/search", json={"queries": [SAMPLE.texts[i % 40][:200]], "k": 5})
        done.append(time.monotonic())
        return response.status_code, len(response.json()["results"][0])

    def add():
        start = time.monotonic()
        response = service.post("/documents", json={"documents": new})
        add_window.extend([start, time.monotonic()])
        return response

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        searches = [pool.submit(search, i) for i in range(4)]
        added = pool.submit(add)
        searches += [pool.submit(search, i) for i in range(4, 40)]
        outcomes = [f.result() for f in searches]
    assert added.result().status_code == 201, added.result().text
    assert outcomes == [(200, 5)] * 40
    assert service.get("/stats").json()["documents"] == 48
    for doc in new:
        assert service.delete(f"/documents/{doc['id']}").status_code == 200
    during = [t for t in done if add_window[0] < t < add_window[1]]
    assert during, "no search was answered while the add was running"


def test_page_and_openapi_are_served(service):
    page = httpx.get(url(service, "/"))
    assert page.status_code == 200 and 'id="query"' in page.text
    assert httpx.get(url(service, "/static/app.js")).status_code == 200
    schema = httpx.get(url(service, "/openapi.json")).json()
    assert {"/search", "/documents", "/documents/{doc_id}", "/explain", "/health", "/stats"} <= set(schema["paths"])
    for path, methods in schema["paths"].items():  # every JSON route declares the shape of its answer
        for method, route in methods.items():
            answer = route["responses"].get("200") or route["responses"]["201"]
            if path.endswith("/image"):  # the page image route answers an image
                assert set(answer["content"]) == {"image/webp"}
                continue
            shape = answer["content"]["application/json"]["schema"]
            assert "$ref" in shape or shape.get("type") == "object", (method, path, shape)
    hit = schema["components"]["schemas"]["Hit"]["properties"]
    assert set(hit) == {"id", "score", "text", "metadata", "passage"}


@contextlib.contextmanager
def serve_process(index, *args, timeout=180.0):
    """``maxsim serve INDEX ARGS`` on a free port as a subprocess; yields its base URL once /health answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "maxsim.cli", "serve", str(index), "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, f"maxsim serve did not answer within {timeout} s"
            try:
                httpx.get(f"{base}/health")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_maxsim_serve_subprocess(tiny_model, tmp_path):
    index = build_index(tmp_path / "index", tiny_model, n=5)
    with serve_process(index) as base:
        assert httpx.get(f"{base}/health").json() == {"status": "ok", "documents": 5, "auth": False, "modality": "text"}
        hits = httpx.post(f"{base}/search", json={"queries": ["flow"], "k": 2}).json()["results"][0]
        assert len(hits) == 2


def test_upsert_and_filter(service):
    docs = [{"id": f"f{i}", "text": f"Supersonic flow over a wedge, experiment {i}.",
             "metadata": {"year": 2000 + i, "lab": "ames" if i % 2 else "langley"}} for i in range(4)]
    assert service.post("/documents", json={"documents": docs}).status_code == 201
    try:
        def ids(where, k=44):
            body = {"queries": ["supersonic flow over a wedge"], "k": k, "filter": where}
            response = service.post("/search", json=body)
            assert response.status_code == 200, response.text
            return sorted(hit["id"] for hit in response.json()["results"][0])

        assert ids({"lab": "ames"}) == ["f1", "f3"]
        assert ids({"year": {"$gte": 2002}}) == ["f2", "f3"]
        assert ids({"$or": [{"lab": "ames", "year": {"$lt": 2002}}, {"year": 2002}]}) == ["f1", "f2"]
        assert ids({"lab": {"$in": ["mars"]}}) == []
        replaced = service.put("/documents/f0", json={"text": "Boundary layers on heated plates.",
                                                      "metadata": {"year": 1990, "lab": "ames"}})
        assert replaced.status_code == 200 and replaced.json() == {"id": "f0", "documents": 44}
        assert service.get("/documents/f0").json() == {"id": "f0", "text": "Boundary layers on heated plates.",
                                                       "metadata": {"year": 1990, "lab": "ames"}}
        assert ids({"lab": "ames"}) == ["f0", "f1", "f3"]
        added = service.put("/documents/f9", json={"text": "A new note on wedges."})
        assert added.status_code == 200 and added.json()["documents"] == 45
        docs.append({"id": "f9"})
    finally:
        for doc in docs:
            assert service.delete(f"/documents/{doc['id']}").status_code == 200


def test_the_service_warms_its_index_before_the_first_request(tiny_model, tmp_path, monkeypatch):
    """Opening the service runs one warm-up search: the exact scan's copy exists before any request."""
    from maxsim.index import packed

    monkeypatch.setenv("MAXSIM_SCAN_DTYPE", "int8")
    packed.scan_dtype.cache_clear()
    live = LiveRetriever(build_index(tmp_path / "index", tiny_model, n=4), tiny_model)
    try:
        segments = list(live.collection.versions._segments.values())
        assert segments and all(seg.arrays["scan"].dtype == torch.int8 for seg in segments)
    finally:
        live.close()
        packed.scan_dtype.cache_clear()


def test_writer_thread_runs_at_lower_priority(tiny_model, tmp_path):
    """Writes run on a thread whose niceness is raised by writer_niceness (searches come first)."""
    import asyncio

    live = LiveRetriever(build_index(tmp_path / "index", tiny_model, n=4), tiny_model, writer_niceness=7)
    try:
        base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        writer = asyncio.run(live.write(lambda r: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        reader = asyncio.run(live.read(lambda r: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        assert (writer, reader) == (min(19, base + 7), base)
    finally:
        live.close()
    with pytest.raises(InvalidInputError, match="writer_niceness"):
        LiveRetriever(tmp_path / "index", tiny_model, writer_niceness=25)
