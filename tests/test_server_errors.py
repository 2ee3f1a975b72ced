"""Every kind of bad request answered cleanly by a real uvicorn: unencodable input (NaN,
lone surrogates) gets a 422 that does not echo it, oversized ids / metadata / answers get 413,
library error types keep their status (404, 409, 503 for a held lock and a damaged file), and
nothing bad is ever stored."""

import contextlib

import httpx
import pytest

from maxsim.errors import InvalidInputError
from maxsim.index.storage import writer_lock
from maxsim.server import Limits, LiveRetriever, create_app
from test_server import AUTH, KEY, LIMITS, build_index, serve_in_thread, url

N = 12


@pytest.fixture(scope="module")
def live(tiny_model, tmp_path_factory):
    live = LiveRetriever(build_index(tmp_path_factory.mktemp("errors") / "index", tiny_model, n=N), tiny_model,
                         readers=2)
    yield live
    live.close()


@pytest.fixture(scope="module")
def service(live):
    with serve_in_thread(create_app(live, api_key=KEY, limits=LIMITS)) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
            yield client


def raw(client, method, path, body: str):
    """Send ``body`` as is (JSON with NaN, lone surrogate escapes ...)."""
    return client.request(method, path, content=body.encode(), headers={"Content-Type": "application/json"})


def test_nan_and_infinity_k_are_422_without_echo(service):
    for value in ("NaN", "Infinity", "-Infinity", "1e999", "true", "2.5"):
        response = raw(service, "POST", "/search", f'{{"queries": ["flow"], "k": {value}}}')
        assert response.status_code == 422, (value, response.text)
        detail = response.json()["detail"]
        assert detail[0]["loc"] == ["body", "k"] and "input" not in detail[0]


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/search", '{"queries": ["heat \\ud800 flow"]}'),
    ("POST", "/explain", '{"query": "flow \\udfff", "id": "1"}'),
    ("POST", "/explain", '{"query": "flow", "id": "\\ud800"}'),
    ("POST", "/documents", '{"documents": [{"id": "s\\ud800", "text": "a note"}]}'),
    ("POST", "/documents", '{"documents": [{"id": "s1", "text": "a note \\ud800"}]}'),
    ("POST", "/documents", '{"documents": [{"id": "s2", "text": "a note", "metadata": {"k": "\\ud800"}}]}'),
    ("POST", "/documents", '{"documents": [{"id": "s3", "text": "a note", "metadata": {"\\udc00": 1}}]}'),
    ("POST", "/documents", '{"documents": [{"id": "s4", "text": "a note", "metadata": {"x": NaN}}]}'),
    ("PUT", "/documents/s5", '{"text": "a note", "metadata": {"x": [Infinity]}}'),
    ("POST", "/search", '{"queries": ["flow"], "\\ud800": 1}'),
    ("POST", "/search", '{"queries": ["flow"], "filter": {"lang": "\\ud800"}}'),
])
def test_unencodable_input_is_422_and_never_stored(service, method, path, body):
    response = raw(service, method, path, body)
    assert response.status_code == 422, response.text
    assert "\\ud800" not in response.text or "surrogate" in response.text
    for doc_id in ("s1", "s2", "s3", "s4", "s5"):
        assert service.get(f"/documents/{doc_id}").status_code == 404
    assert service.get("/stats").json()["documents"] == N


def test_deep_or_large_metadata_and_long_ids_are_413(live, service):
    deep = 1
    for _ in range(300):
        deep = {"a": deep}
    big = {"blob": "x" * (70 << 10)}
    with serve_in_thread(create_app(live)) as base:  # default limits: a 4 MiB body may hold 64 KiB metadata
        for metadata, words in [(deep, "nested more than 16"), (big, "the limit is 65536")]:
            for method, path, body in [("POST", "/documents", {"documents": [{"id": "m1", "text": "note",
                                                                               "metadata": metadata}]}),
                                       ("PUT", "/documents/m1", {"text": "note", "metadata": metadata})]:
                response = httpx.request(method, base + path, json=body, timeout=60)
                assert response.status_code == 413 and words in response.json()["detail"], response.text[:300]
    long_id = "i" * 10_000
    for method, path, body in [("POST", "/documents", {"documents": [{"id": long_id, "text": "note"}]}),
                               ("PUT", f"/documents/{long_id}", {"text": "note"}),
                               ("GET", f"/documents/{long_id}", None), ("DELETE", f"/documents/{long_id}", None),
                               ("POST", "/explain", {"query": "note", "id": long_id})]:
        response = service.request(method, path, json=body)
        assert response.status_code == 413 and "the limit is 512" in response.json()["detail"], (method, path)
    huge = service.post("/documents", json={"documents": [{"id": "j" * 3_000_000, "text": "note"}]})
    assert huge.status_code == 413
    assert service.get("/documents/m1").status_code == 404 and service.get("/stats").json()["documents"] == N


def test_answers_are_bounded(live):
    small = Limits(max_batch=8, max_text_chars=3000, max_document_chars=3000, max_body_bytes=40_000, max_hits=200,
                   max_response_chars=20_000)
    with serve_in_thread(create_app(live, limits=small)) as base:
        many = httpx.post(f"{base}/search", json={"queries": ["flow"] * 8, "k": 26})
        assert many.status_code == 413 and "more than 200 hits" in many.json()["detail"]
        answer = httpx.post(f"{base}/search", json={"queries": ["flow"] * 8, "k": N, "excerpts": True},
                            timeout=60).json()
    hits = [hit for hits in answer["results"] for hit in hits]
    excerpts = [entry for entries in answer["excerpts"] for entry in entries]
    assert [e is None for e in excerpts] == [h["text"] is None for h in hits]  # no excerpt past the budget
    assert len(hits) == 8 * N and 0 < answer["omitted"] < len(hits)
    cut = hits[len(hits) - answer["omitted"]:]
    assert all(h["text"] is None and h["metadata"] is None and h["passage"]["text"] is None for h in cut)
    assert all(h["text"] for h in hits[:len(hits) - answer["omitted"]])
    assert sum(len(h["text"] or "") + len(h["passage"]["text"] or "") for h in hits) <= 20_000


def test_a_listing_past_the_answer_budget_keeps_every_hit(live, capsys):
    """``maxsim search`` through a server whose answer budget cuts the later hits' texts: every hit
    is listed, in order, those without an excerpt with an empty one, and stderr says how many."""
    from maxsim.cli.search import remote_hits

    with serve_in_thread(create_app(live, limits=Limits(max_response_chars=3_000))) as base:
        listed = remote_hits(base, "flow", N, {}, None, None)
    assert [h["id"] for h in listed] == [h.id for h in live.collection.search("flow", k=N)[0]]
    empty = sum(h["excerpt"]["text"] == "" for h in listed)
    assert listed[0]["excerpt"]["text"] and listed[0]["matched"] and 0 < empty < N
    assert f"warning: {empty} of {N} hits came without an excerpt" in capsys.readouterr().err


def test_library_errors_keep_their_status(live, service):
    assert service.get("/documents/no-such").status_code == 404
    assert "no-such" in service.delete("/documents/no-such").json()["detail"]
    taken = service.post("/documents", json={"documents": [{"id": "1", "text": "again"}]})
    assert taken.status_code == 409 and "'1'" in taken.json()["detail"]
    bad_filter = service.post("/search", json={"queries": ["flow"], "filter": {"year": {"$bogus": 1}}})
    assert bad_filter.status_code == 422 and "$bogus" in bad_filter.json()["detail"]
    live.collection.lock_timeout = 0.2
    try:
        with writer_lock(live.folder, 1.0):  # another writer holds the folder
            locked = service.put("/documents/1", json={"text": "changed"})
    finally:
        live.collection.lock_timeout = 600.0
    assert locked.status_code == 503 and "process" in locked.json()["detail"]
    assert locked.headers["Retry-After"] == "1"
    assert service.get("/documents/1").json()["text"] != "changed"


def test_empty_api_key_is_refused(live):
    for key in ("", " ", "two words"):
        with pytest.raises(InvalidInputError, match="API key"):
            create_app(live, api_key=key)


def test_docs_are_served_locally(service):
    for page in ("/docs", "/redoc"):
        html = httpx.get(url(service, page)).text
        assets = [part.split('"')[0] for part in html.split('src="')[1:] + html.split('href="')[1:]]
        assert assets and not [a for a in assets if "//" in a], assets
        for asset in assets:
            assert httpx.get(url(service, asset)).status_code == 200, asset
        assert "cdn" not in html.lower()
    assert "/docs-static/swagger-ui-bundle.js" in httpx.get(url(service, "/docs")).text


def test_damaged_store_is_503_naming_the_file(tiny_model, tmp_path):
    folder = build_index(tmp_path / "index", tiny_model, n=3)
    live = LiveRetriever(folder, tiny_model, readers=1)
    try:
        with contextlib.ExitStack() as stack:
            base = stack.enter_context(serve_in_thread(create_app(live)))
            for path in (folder / "index").iterdir():
                if path.suffix == ".npy" or path.name.startswith("seg"):
                    path.write_bytes(path.read_bytes()[:20])
            response = httpx.post(f"{base}/search", json={"queries": ["flow"], "k": 2}, timeout=60)
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]  # the file, named inside the served folder; where that is stays hidden
        assert detail.startswith("index/seg-") and str(tmp_path) not in detail, detail
    finally:
        live.close()
