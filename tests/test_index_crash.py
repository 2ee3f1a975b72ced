"""Crash safety (kill -9 during large adds and removes), corruption detection, the writer lock."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from maxsim.errors import CorruptedError, LockedError
from maxsim.index import ExactIndex, PlaidIndex, blocks, open_index, storage

DIM = 16
BATCH = 400  # documents per add: each add writes ~100 k token vectors


def batch(b):
    rng = np.random.default_rng(b)
    lens = rng.integers(100, 400, BATCH)
    return [f"b{b}-{i}" for i in range(BATCH)], [rng.standard_normal((int(n), DIM)).astype(np.float32) for n in lens]


def ops_from(start):
    """The deterministic operations of a writer starting at batch ``start``: add, add, add, remove..."""
    b = start
    while True:
        yield ("add", b)
        yield ("add", b + 1)
        yield ("remove", b)
        yield ("add", b + 2)
        b += 3


def apply(state: set, op):
    kind, b = op
    ids = {f"b{b}-{i}" for i in range(BATCH)}
    return state | ids if kind == "add" else state - ids


def writer_child(folder, start, fd):
    index = open_index(folder)
    for op in ops_from(start):
        ids, embs = batch(op[1])
        if op[0] == "add":
            index.add(ids, embs, metadata=[{"b": op[1]}] * len(ids))
        else:
            index.remove(ids)
        os.write(fd, b"+")  # one byte per committed operation


def test_kill9_during_large_adds_and_removes(tmp_path):
    folder = tmp_path / "ix"
    ExactIndex.create(folder, DIM, dtype="float32")
    state, start, rng, kills, progress = set(), 0, random.Random(7), 0, []
    deadline = time.monotonic() + 45
    while kills < 18 and time.monotonic() < deadline:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: numpy / json / file IO only, safe after fork
            os.close(r)
            try:
                writer_child(folder, start, w)
            finally:
                os._exit(0)
        os.close(w)
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        done = 0
        while chunk := os.read(r, 4096):
            done += len(chunk)
        os.close(r)
        kills += 1
        progress.append(done)
        ops = ops_from(start)
        applied = [next(ops) for _ in range(done + 1)]
        committed = state
        for op in applied[:done]:
            committed = apply(committed, op)
        in_flight = apply(committed, applied[done])
        index = open_index(folder)  # must open at the last committed state
        found = set(index.ids())
        assert found in (committed, in_flight), f"kill {kills}: half-visible state after {done} operations"
        state = found
        for doc_id in list(found)[:3]:  # stored vectors intact
            b, i = map(int, doc_id[1:].split("-"))
            np.testing.assert_array_equal(index.get_embeddings([doc_id])[0], batch(b)[1][i])
            assert index.metadata(doc_id) == {"b": b}
        if found:
            hits = index.search([np.ones((2, DIM), np.float32)], k=3)[0]
            assert len(hits) == 3 and all(h[0] in found for h in hits)
        index.verify()
        start = applied[-1][1] + 3  # fresh batch numbers for the next writer
    assert kills >= 10
    assert sum(progress) > 0, progress  # the writers got somewhere before being killed
    # the next writer collects the leftovers of killed ones
    index = open_index(folder)
    index.add(["final"], [np.ones((1, DIM), np.float32)])
    leftovers = [n for n in os.listdir(folder) if n.startswith(".tmp-")]
    assert leftovers == []
    assert set(open_index(folder).ids()) == state | {"final"}


PLAID_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from maxsim.index import open_index
    from maxsim.index.synthetic import ClusteredCollection
    index = open_index(sys.argv[1])
    coll = ClusteredCollection(3000, dim=32, n_terms=256, doc_tokens=(20, 60), seed=int(sys.argv[2]))
    start = int(sys.argv[2]) * 10000
    for s in range(0, 3000, 1000):
        index.add([f"p{start + i}" for i in range(s, s + 1000)], coll.documents(s, s + 1000))
        print("ok", flush=True)
""")


def test_kill9_plaid_add_and_recluster(tmp_path):
    """Kills of a PLAID writer (the first add trains, later adds may re-cluster and rewrite all) aimed at a
    running writer: after a random number of its three adds has committed (read from its output), while it
    runs; the kills that landed before the writer finished are counted, and each round must land one."""
    folder = tmp_path / "p"
    PlaidIndex.create(folder, 32, nbits=2)
    rng = random.Random(3)
    committed_batches, landed = set(), 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", PLAID_CHILD, str(folder), str(round_)],
                                stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(rng.randint(0, 2)):  # wait for that many committed adds
            assert proc.stdout.readline().strip() == "ok"
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            landed += 1
        proc.kill()
        proc.wait()
        index = open_index(folder)
        ids = set(index.ids())
        # every add is all-or-nothing: ids come in complete blocks of 1000
        blocks = {}
        for i in ids:
            n = int(i[1:])
            blocks.setdefault((n // 10000, (n % 10000) // 1000), set()).add(n)
        assert all(len(v) == 1000 for v in blocks.values()), "a half-visible add"
        assert committed_batches <= set(blocks)
        committed_batches = set(blocks)
        index.verify()
        if ids:
            assert len(index.search([np.ones((3, 32), np.float32)], k=5)[0]) == 5
    assert landed == 4, f"{4 - landed} of 4 kills hit a writer that had finished"


def _two_segment_index(tmp_path, kind=ExactIndex):
    index = kind.create(tmp_path / "ix", DIM) if kind is ExactIndex else kind.create(tmp_path / "ix", DIM, nbits=2)
    rng = np.random.default_rng(0)
    index.add([f"a{i}" for i in range(50)], [rng.standard_normal((20, DIM)).astype(np.float32) for _ in range(50)])
    index.add([f"b{i}" for i in range(50)], [rng.standard_normal((20, DIM)).astype(np.float32) for _ in range(50)])
    return index


def _file(index, suffix):
    return next(index.folder / n for n in index._body["files"] if n.endswith(suffix))


@pytest.mark.parametrize("kind", [ExactIndex, PlaidIndex])
def test_truncated_file_is_named(tmp_path, kind):
    index = _two_segment_index(tmp_path, kind)
    path = _file(index, "-vectors.npy" if kind is ExactIndex else "-residuals.npy")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(CorruptedError, match=path.name):
        open_index(tmp_path / "ix")


@pytest.mark.parametrize("suffix", ["-ids.json", "-doclens.npy", "-codes.npy", "-centroids.npy"])
def test_flipped_byte_in_small_file_is_named(tmp_path, suffix):
    index = _two_segment_index(tmp_path, PlaidIndex)
    path = _file(index, suffix)
    data = bytearray(path.read_bytes())
    data[len(data) - 3] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptedError, match=path.name):
        open_index(tmp_path / "ix")


def test_flipped_byte_in_large_file_found_by_verify(tmp_path, monkeypatch):
    index = _two_segment_index(tmp_path)
    path = _file(index, "-vectors.npy")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptedError, match=path.name):
        index.verify()
    with pytest.raises(CorruptedError, match=path.name):
        open_index(tmp_path / "ix", verify=True)
    # as if the file were large but written without block checksums: checked whole when opened
    monkeypatch.setattr(blocks, "SMALL_FILE_BYTES", 1024)
    with pytest.raises(CorruptedError, match=path.name):
        open_index(tmp_path / "ix")


def test_missing_file_and_bad_manifest(tmp_path):
    index = _two_segment_index(tmp_path)
    path = _file(index, "-ids.json")
    path.unlink()
    with pytest.raises(CorruptedError, match=path.name):
        open_index(tmp_path / "ix")
    manifest = tmp_path / "ix" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": ', '"version": 1', 1))
    with pytest.raises(CorruptedError, match="manifest.json"):
        open_index(tmp_path / "ix")
    manifest.write_text("{not json")
    with pytest.raises(CorruptedError, match="manifest.json"):
        open_index(tmp_path / "ix")
    with pytest.raises(FileNotFoundError, match="no index"):
        open_index(tmp_path / "nothing-here")


def test_failed_write_leaves_index_unchanged(tmp_path, monkeypatch):
    index = _two_segment_index(tmp_path)
    before = index.ids()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(storage.Manifest, "commit", staticmethod(boom))
    with pytest.raises(OSError, match="disk full"):
        index.add(["new"], [np.ones((3, DIM), np.float32)])
    monkeypatch.undo()
    assert index.ids() == before and open_index(tmp_path / "ix").ids() == before
    index.add(["new"], [np.ones((3, DIM), np.float32)])  # the leftovers are collected
    assert not [n for n in os.listdir(tmp_path / "ix") if n.startswith(".tmp-")]


def test_writer_lock(tmp_path):
    index = ExactIndex.create(tmp_path / "ix", DIM, lock_timeout=0.3)
    with storage.writer_lock(tmp_path / "ix", 1.0):  # another writer holds the lock
        with pytest.raises(LockedError, match="LOCK"):
            index.add(["x"], [np.ones((2, DIM), np.float32)])
    assert len(index) == 0
    index.add(["x"], [np.ones((2, DIM), np.float32)])
    assert index.ids() == ["x"]


def test_concurrent_writer_processes(tmp_path):
    folder = tmp_path / "ix"
    ExactIndex.create(folder, DIM)
    pids = []
    for w in range(3):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                index = open_index(folder)
                for j in range(5):
                    index.add([f"w{w}-{j}-{i}" for i in range(20)],
                              [np.full((4, DIM), w + j, np.float32) for _ in range(20)])
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    assert len(open_index(folder)) == 3 * 5 * 20
