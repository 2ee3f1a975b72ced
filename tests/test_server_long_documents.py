"""Long documents over HTTP (a real uvicorn on 127.0.0.1): a 1 MB text through ``PUT /documents/{id}``
is split into passages as ``maxsim index`` splits files, acknowledged once committed, and found by
a sentence from its end (bench/long_documents.py does the same with the default model and times
it); texts over ``max_document_chars`` and bodies over ``max_body_bytes`` answer
413, the latter before the body is read."""

import json
import socket
from http.client import HTTPResponse

import httpx
import pytest

from maxsim.server import Limits, LiveRetriever, create_app
from test_server import build_index, serve_in_thread

ENDING = "Zebra mussel colonies clog the cooling water intakes."
LIMITS = Limits(max_document_chars=2_000_000, max_body_bytes=3_000_000)


def long_text(n_chars: int) -> str:
    """A maintenance log of about ``n_chars`` characters (one line per fan bearing), then ``ENDING``."""
    lines = (f"Fan bearing {i} on line {i % 97} was greased and its vibration logged." for i in range(10 ** 6))
    body = []
    while sum(map(len, body)) < n_chars:
        body.append(next(lines))
    return " ".join(body) + " " + ENDING


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    live = LiveRetriever(build_index(tmp_path_factory.mktemp("long") / "index", tiny_model, n=20), tiny_model)
    with serve_in_thread(create_app(live, limits=LIMITS)) as url:
        yield url, live
    live.close()


def test_a_megabyte_document_is_found_by_its_last_sentence(server):
    url, live = server
    text = long_text(1_000_000)
    answer = httpx.put(f"{url}/documents/report", json={"text": text, "metadata": {"kind": "report"}}, timeout=600)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": "report", "documents": 21}  # committed when acknowledged
    passages = live.collection.stats()["passages"]
    assert passages > 100  # split, not truncated
    # hybrid: the tiny test model ranks passages near randomly; BM25 sees the words only the ending has
    hits = httpx.post(f"{url}/search", json={"queries": [ENDING], "k": 3, "hybrid": True}, timeout=60).json()
    assert hits["results"][0][0]["id"] == "report"
    assert httpx.get(f"{url}/documents/report", timeout=60).json()["text"] == text


def test_too_long_texts_and_bodies_answer_413(server):
    url, _ = server
    over = httpx.post(f"{url}/documents", json={"documents": [{"text": "word " * 400_001}]}, timeout=60)
    assert over.status_code == 413 and "2000005 characters; the limit is 2000000" in over.json()["detail"]
    query = httpx.post(f"{url}/search", json={"queries": ["word " * 5000]}, timeout=60)
    assert query.status_code == 413 and "the limit is 20000" in query.json()["detail"]  # queries stay short
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:  # declares 3 MB, sends nothing
        sock.sendall(b"PUT /documents/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 3000001\r\n\r\n")
        response = HTTPResponse(sock)
        response.begin()
        assert response.status == 413 and "over 3000000 bytes" in json.loads(response.read())["detail"]
