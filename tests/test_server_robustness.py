"""The service under pressure, on a real server: a write that cannot start within ``lock_wait`` answers 503
with ``Retry-After`` (and a lock left by a killed holder is taken over), full queues answer 503 at once,
concurrent searches are answered in batches with the answers they get alone; and the smaller promises
(messages, documented limits, the API key from the environment, ``--where`` operators)."""

import concurrent.futures
import re
import signal
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from conftest import ROOT
from maxsim.cli import app as cli
from maxsim.search.filters import MAX_CLAUSES, MAX_DEPTH, MAX_VALUES
from maxsim.server import Limits, LiveRetriever, create_app
from test_server import SAMPLE, build_index, serve_in_thread

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.ftruncate(fd, 0); os.pwrite(fd, f'{os.getpid()}\\n'.encode(), 0)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")


def hold_lock(folder) -> subprocess.Popen:
    """Another process holding ``folder``'s writer lock (as a stuck or slow writer would)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder / "LOCK")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(30)


@pytest.fixture()
def index(tmp_path, tiny_model):
    return build_index(tmp_path / "index", tiny_model, n=12)


def put(base: str, doc_id: str, text: str) -> httpx.Response:
    return httpx.put(f"{base}/documents/{doc_id}", json={"text": text}, timeout=300)


def test_a_held_lock_is_503_after_lock_wait_and_a_killed_holder_frees_it(index, tiny_model, tmp_path):
    live = LiveRetriever(index, tiny_model, readers=1, lock_wait=1.0)
    holder = hold_lock(index)
    try:
        with serve_in_thread(create_app(live)) as base:
            with concurrent.futures.ThreadPoolExecutor(3) as pool:  # each its own wait, none behind the others
                answers = list(pool.map(lambda i: put(base, f"new{i}", "A new note on flutter."), range(3)))
            for answer in answers:
                assert answer.status_code == 503 and answer.headers["Retry-After"] == "1", answer.text
                assert str(tmp_path) not in answer.text
            details = sorted(answer.json()["detail"] for answer in answers)
            held = f"LOCK is held by another writer (process {holder.pid})"
            assert details[0].startswith(held), details  # the first write reached the lock and named its holder
            # the others timed out in the service's queue, or (when the first gave up just before their own
            # deadline) reached the lock in turn: either way a 503 saying why
            assert all(d.startswith(("the write could not start within 1 s", held)) for d in details[1:]), details
            kill(holder)  # the holder dies holding the lock: flock ends with it
            assert put(base, "new0", "A new note on flutter.").status_code == 200
            assert httpx.get(f"{base}/documents/new0").json()["text"] == "A new note on flutter."
    finally:
        kill(holder)
        live.close()


def test_full_queues_answer_503_at_once(index, tiny_model):
    live = LiveRetriever(index, tiny_model, readers=1, lock_wait=120.0, max_queue=2)
    holder = hold_lock(index)
    try:
        with serve_in_thread(create_app(live)) as base:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(put, base, f"q{i}", f"Queued note {i}.") for i in range(4)]
                refused = []
                for future in concurrent.futures.as_completed(futures):
                    if future.result().status_code == 503:
                        refused.append(future.result())
                        if len(refused) == 2:
                            kill(holder)  # the two writes that fit the queue may go on now
            statuses = sorted(f.result().status_code for f in futures)
            assert statuses == [200, 200, 503, 503], statuses
            for answer in refused:
                assert answer.headers["Retry-After"] == "1" and "waiting" in answer.json()["detail"]
    finally:
        kill(holder)
        live.close()


def test_concurrent_searches_are_batched_with_the_answers_they_get_alone(index, tiny_model):
    queries = [SAMPLE.texts[i][:120] for i in range(12)]
    live = LiveRetriever(index, tiny_model, readers=1, batch_wait=0.5)
    try:
        alone = {(q, k): [(h.id, h.score) for h in live.collection.search([q], k=k)[0]]
                 for q in queries for k in (3, 5)}
        with serve_in_thread(create_app(live)) as base:
            def search(i):
                k = 3 if i % 3 else 5
                answer = httpx.post(f"{base}/search", json={"queries": [queries[i]], "k": k}, timeout=300)
                assert answer.status_code == 200, answer.text
                return (queries[i], k), [(h["id"], h["score"]) for h in answer.json()["results"][0]]

            with concurrent.futures.ThreadPoolExecutor(len(queries)) as pool:
                batched = dict(pool.map(search, range(len(queries))))
        for key, hits in batched.items():
            assert [i for i, _ in hits] == [i for i, _ in alone[key]]
            assert [s for _, s in hits] == pytest.approx([s for _, s in alone[key]], abs=1e-4)
        assert live._searches.batches < len(queries)  # answered together: fewer search calls than requests
    finally:
        live.close()


def test_messages_name_the_item_not_the_servers_folder(index, tiny_model, tmp_path):
    live = LiveRetriever(index, tiny_model, readers=1)
    try:
        with serve_in_thread(create_app(live, limits=Limits())) as base:
            missing = httpx.get(f"{base}/documents/no-such-id")
            taken = httpx.post(f"{base}/documents", json={"documents": [{"id": SAMPLE.ids[0], "text": "again"}]})
            for answer, status in ((missing, 404), (taken, 409)):
                assert answer.status_code == status and str(tmp_path) not in answer.text, answer.text
            assert "'no-such-id'" in missing.json()["detail"] and f"'{SAMPLE.ids[0]}'" in taken.json()["detail"]
            surrogate = '{"documents": [{"text": "x", "metadata": {"a": "\\ud800"}}]}'
            lone = httpx.post(f"{base}/documents", content=surrogate, headers={"Content-Type": "application/json"})
            assert lone.status_code == 422 and "lone surrogate" in lone.json()["detail"], lone.text
            deepest = {"a": 1}
            for _ in range(Limits().max_metadata_depth - 1):  # a filter nested exactly as deep as allowed
                deepest = {"$not": deepest}
            ok = httpx.post(f"{base}/search", json={"queries": ["flow"], "filter": deepest}, timeout=120)
            too_deep = httpx.post(f"{base}/search", json={"queries": ["flow"], "filter": {"$not": deepest}})
            assert ok.status_code == 200 and too_deep.status_code == 413, (ok.text, too_deep.text)
    finally:
        live.close()


def test_an_empty_api_key_from_the_environment_is_refused(index):
    result = CliRunner().invoke(cli, ["serve", str(index)], env={"MAXSIM_API_KEY": ""})
    assert result.exit_code == 2 and "API key is empty" in result.output, result.output


def test_unknown_where_operators_are_refused(index):
    for clause, op in (("year >> 3", ">>"), ("year =< 3", "=<"), ("year <> 3", "<>")):
        result = CliRunner().invoke(cli, ["list", str(index), "--where", clause])
        assert result.exit_code == 2 and f"unknown operator '{op}'" in result.output, result.output


def documented_limits() -> dict[str, int]:
    """The limits table of docs/server.md: name -> default, units read (``64 KiB``, ``8 Mi``, ``20,000``)."""
    units = {"": 1, "KiB": 1 << 10, "MiB": 1 << 20, "Mi": 1 << 20}
    text = (ROOT / "docs" / "server.md").read_text()
    rows = re.findall(r"^\s*\| `(max_\w+)`[^|]*\| ([\d,]+) ?(KiB|MiB|Mi)? \|", text, re.M)
    return {name: int(value.replace(",", "")) * units[unit] for name, value, unit in rows}


def test_documented_limits_are_the_enforced_ones():
    limits = vars(Limits())
    assert documented_limits() == {name: value for name, value in limits.items() if name in documented_limits()}
    assert set(documented_limits()) == set(limits)
    search = (ROOT / "docs" / "search.md").read_text()
    found = re.search(r"combinators \(`\$and`, `\$or`, `\$nor`, `\$not`\) nested ([\d,]+) deep, at most ([\d,]+) "
                      r"clauses and ([\d,]+) values", search)
    assert found and [int(n.replace(",", "")) for n in found.groups()] == [MAX_DEPTH, MAX_CLAUSES, MAX_VALUES]
    assert f"`max_metadata_depth` ({limits['max_metadata_depth']})" in search
