"""``maxsim search --server URL`` and the discovery of a running ``maxsim serve``: the same hits as
the in-process search (a real server subprocess on 127.0.0.1, started with an API key that the
searches take from ``MAXSIM_API_KEY``), ``--where`` filters, ``--device``; a missing or refused key is
an error, never a silent search in this process."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import CRANFIELD, TINY_MODEL
from maxsim.cli import app
from maxsim.cli.discovery import FILE_NAME, discover
from maxsim.cli.remote import health

QUERY = "boundary layer heat transfer"
KEY = "s3cret"


def build_folder(path):
    """A retriever folder (tiny model) of 24 Cranfield abstracts, metadata ``kind`` odd/even and ``n``."""
    from maxsim.search import Retriever

    rows = [json.loads(line) for line in open(CRANFIELD / "corpus.jsonl", encoding="utf-8")][:24]
    with Retriever.create(path, model_name=str(TINY_MODEL), device="cpu") as retriever:
        retriever.add([f"{r['title']} {r['text']}" for r in rows], ids=[r["_id"] for r in rows],
                      metadata=[{"kind": "odd" if i % 2 else "even", "n": i} for i in range(len(rows))])
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_folder(tmp_path_factory.mktemp("search-server") / "index")


@pytest.fixture(scope="module")
def server(folder):
    """``maxsim serve --api-key KEY`` of ``folder`` in a subprocess on a free loopback port: (url, process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "maxsim.cli", "serve", str(folder), "--host", "127.0.0.1",
                                "--port", str(port), "--readers", "1", "--api-key", KEY], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while not health(url) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if process.poll() is not None or not health(url):
        process.kill()
        pytest.fail(f"maxsim serve did not start: {process.communicate()[0][-2000:]}")
    yield url, process
    if process.poll() is None:
        process.kill()
        process.wait()


def run(*args, key=KEY):
    result = CliRunner().invoke(app, ["search", *map(str, args)], env={"MAXSIM_API_KEY": key})
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def assert_same_hits(ours, theirs):
    assert [h["id"] for h in ours] == [h["id"] for h in theirs] and len(ours) == 5
    for a, b in zip(ours, theirs):
        assert a["score"] == pytest.approx(b["score"], rel=1e-5, abs=1e-5)
        assert (a["passage"], a["matched"], a["metadata"], a["rank"]) == \
            (b["passage"], b["matched"], b["metadata"], b["rank"])


@pytest.fixture(scope="module")
def local(folder):
    """In-process hits of QUERY (k=5), searched once for the module."""
    return run(folder, QUERY, "-k", 5, "--json", "--local", "--device", "cpu")[0]


def test_server_answers_the_same_hits_as_in_process(folder, server, local):
    url, _ = server
    remote, log = run(folder, QUERY, "-k", 5, "--json", "--server", url)
    assert f"searching through the maxsim server at {url}" in log
    assert_same_hits(local, remote)


def test_where_filters_in_process_and_on_the_server(folder, server, local):
    url, _ = server
    mine, log = run(folder, QUERY, "-k", 5, "--json", "--local", "--where", "kind = odd", "--where", "n < 20")
    remote, _ = run(folder, QUERY, "-k", 5, "--json", "--server", url, "-w", "kind = odd", "-w", "n < 20")
    assert "searching through" not in log
    assert_same_hits(mine, remote)
    assert all(h["metadata"]["kind"] == "odd" and h["metadata"]["n"] < 20 for h in mine)
    assert [h["id"] for h in local] != [h["id"] for h in mine]  # the filter changed the ranking


def test_a_missing_or_refused_key_is_an_error(folder, server):
    url, _ = server
    missing = CliRunner().invoke(app, ["search", str(folder), QUERY], env={"MAXSIM_API_KEY": ""})
    assert missing.exit_code == 2 and "needs an API key: set MAXSIM_API_KEY" in missing.stderr
    refused = CliRunner().invoke(app, ["search", str(folder), QUERY], env={"MAXSIM_API_KEY": "wrong"})
    assert refused.exit_code == 2 and "401 missing or wrong API key" in refused.stderr  # no silent local search
    assert f"searching through the maxsim server at {url}" in refused.stderr


def test_a_running_server_is_discovered_and_a_stopped_one_is_not(folder, server, local):
    url, process = server
    assert discover(folder)["url"] == url
    found, log = run(folder, QUERY, "-k", 5, "--json")
    assert f"searching through the maxsim server at {url}" in log
    assert_same_hits(local, found)
    process.send_signal(signal.SIGTERM)  # a clean stop (Popen.terminate, docker stop) removes the discovery file
    process.wait(timeout=60)
    assert not (folder / FILE_NAME).exists()
    (folder / FILE_NAME).write_text(json.dumps({"url": url, "pid": process.pid, "auth": False}))  # as if killed
    assert discover(folder) is None
    after, log = run(folder, QUERY, "-k", 5, "--json")
    assert "searching through" not in log
    assert_same_hits(local, after)


def test_no_server_at_the_url_is_one_error_line(folder):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    result = CliRunner().invoke(app, ["search", str(folder), "flow", "--server", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"error: no maxsim server answers at http://127.0.0.1:{port}" in result.stderr
