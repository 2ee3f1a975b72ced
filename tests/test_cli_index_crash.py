"""kill -9 of `maxsim add` / `maxsim add --upsert` / `maxsim remove` while they commit leaves the retriever
folder at its last commit: the whole change or none of it, index, store and BM25 agreeing.

Each kill is aimed at the write: the test waits until the writer holds the folder's lock (seen in
/proc/locks: encoding is over, the commit is under way), lets it run a random few milliseconds, and kills it
if it still holds the lock; the kills that landed so are counted, and enough of them must land."""

import json
import os
import random
import subprocess
import sys
import time

import pytest

from conftest import TINY_MODEL
from maxsim.search import Retriever

LANDED = 2 if os.environ.get("CI") == "true" else 3  # kills that must land mid-commit (add, upsert, remove)
BATCH = 150  # documents per change


def state_of(folder):
    """id -> text, after checking that index, passages and BM25 agree on one version."""
    with Retriever.open(folder, device="cpu") as r, r.versions.reading() as (snap, index):
        keys = {str(k) for (k,) in snap.conn.execute("SELECT key FROM passages")}
        assert set(index.ids()) == keys
        ids, texts = snap.all_texts()
        assert r.bm25.get(snap.bm25, snap.all_texts).ids == ids
        return dict(zip(ids, texts))


def change(rng, state, run):
    """(command arguments after the folder, expected state after the change)."""
    op = ["add", "upsert", "remove"][run % 3]
    if op == "remove":
        ids = rng.sample(sorted(state), 20)
        return ["remove", *ids], {i: t for i, t in state.items() if i not in ids}
    ids = [f"r{run}-{j}" for j in range(BATCH)]
    if op == "upsert":
        ids[:20] = rng.sample(sorted(state), 20)
    docs = {i: f"run {run} document {i} about wing lift number {rng.randint(0, 999)}" for i in ids}
    return [op, docs], {**state, **docs}


def command(folder, tmp_path, args):
    if args[0] == "remove":
        return [sys.executable, "-m", "maxsim.cli", "remove", str(folder), *args[1:]]
    path = tmp_path / f"batch-{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in args[1].items()))
    return [sys.executable, "-m", "maxsim.cli", "add", str(folder), str(path), "--device", "cpu",
            *(["--upsert"] if args[0] == "upsert" else [])]


def holds_lock(pid: int, lock) -> bool:
    """Whether process ``pid`` holds a flock on the file ``lock`` (Linux /proc/locks)."""
    inode = os.stat(lock).st_ino
    for line in open("/proc/locks"):
        fields = line.split()
        if fields[1] == "FLOCK" and int(fields[4]) == pid and int(fields[5].split(":")[-1]) == inode:
            return True
    return False


def kill_while_committing(proc, lock, rng) -> bool:
    """Kill ``proc`` a random few ms after it takes the lock; True if it still held the lock then."""
    while proc.poll() is None and not holds_lock(proc.pid, lock):
        time.sleep(0.001)
    time.sleep(rng.uniform(0.0, 0.02))
    landed = proc.poll() is None and holds_lock(proc.pid, lock)
    proc.kill()
    proc.wait()
    return landed


@pytest.mark.slow
def test_kill9_of_cli_writers_mid_commit_leaves_the_last_commit(tmp_path):
    folder = tmp_path / "index"
    with Retriever.create(folder, model_name=str(TINY_MODEL), device="cpu") as r:
        r.add([f"seed document {i} on shells" for i in range(60)], ids=[f"s{i}" for i in range(60)])
    state, rng, landed, run = state_of(folder), random.Random(0), [], 0
    while sum(landed) < LANDED and run < 4 * LANDED:
        run += 1
        args, after = change(rng, state, run)
        proc = subprocess.Popen(command(folder, tmp_path, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        landed.append(kill_while_committing(proc, folder / "LOCK", rng))
        found = state_of(folder)
        assert found in (state, after), f"run {run} ({args[0]}): a change is half-visible"
        state = found
    assert sum(landed) >= LANDED, f"only {sum(landed)} of {len(landed)} kills landed while a writer committed"
    args, after = change(rng, state, run + 1)  # the folder is not left locked: the next writer commits
    done = subprocess.run(command(folder, tmp_path, args), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and state_of(folder) == after, done.stderr[-2000:]
