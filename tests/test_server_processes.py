"""Two real ``maxsim serve`` processes on one folder: writes go through the first, reads through
both. A document whose add was acknowledged is found by either (never a 404), one whose delete
was acknowledged is gone from both, /health follows, and a duplicate id racing through both
processes is added once (201) and refused once (409)."""

import concurrent.futures
import contextlib
import os
import threading

import httpx
import pytest

from test_server import SAMPLE, build_index, serve_process

ROUNDS = 6 if os.environ.get("CI") else 10


@pytest.mark.slow
def test_two_processes_serve_one_folder(tiny_model, tmp_path):
    index = build_index(tmp_path / "index", tiny_model, n=10)
    servers = [serve_process(index) for _ in range(2)]
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.push(server.__exit__)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # start both at once (each loads torch)
            writer_url, reader_url = pool.map(lambda server: server.__enter__(), servers)
        run_rounds(writer_url, reader_url)
        race_duplicate(writer_url, reader_url)


def run_rounds(writer_url: str, reader_url: str) -> None:
    acknowledged, failures, stop = [], [], threading.Event()

    def read_loop(base):
        with httpx.Client(base_url=base, timeout=60) as client:
            while not stop.is_set():
                for doc_id in list(acknowledged):
                    response = client.get(f"/documents/{doc_id}")
                    if doc_id in acknowledged and response.status_code != 200:
                        failures.append((base, doc_id, response.status_code, response.text))
                searched = client.post("/search", json={"queries": ["boundary layer flow"], "k": 5, "hybrid": True})
                if searched.status_code != 200:
                    failures.append((base, "search", searched.status_code, searched.text))

    readers = [threading.Thread(target=read_loop, args=(base,)) for base in (reader_url, writer_url)]
    for thread in readers:
        thread.start()
    try:
        with httpx.Client(base_url=writer_url, timeout=120) as writer, httpx.Client(base_url=reader_url) as other:
            for i in range(ROUNDS):
                doc_id = f"w{i}"
                added = writer.post("/documents", json={"documents": [{"id": doc_id, "text": SAMPLE.texts[20 + i]}]})
                assert added.status_code == 201, added.text
                acknowledged.append(doc_id)
                assert other.get(f"/documents/{doc_id}").status_code == 200  # the other process follows
                if i % 2:
                    gone = acknowledged.pop(0)
                    assert writer.delete(f"/documents/{gone}").status_code == 200
                    assert other.get(f"/documents/{gone}").status_code == 404
                health = other.get("/health").json()["documents"]
                assert health == 10 + len(acknowledged), health
    finally:
        stop.set()
        for thread in readers:
            thread.join(120)
    assert not failures, failures[:5]


def race_duplicate(first: str, second: str) -> None:
    body = {"documents": [{"id": "twin", "text": "A note that two clients add at once."}]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda base: httpx.post(f"{base}/documents", json=body, timeout=120), (first, second)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
