"""A retriever folder is one state with one version: kill -9 of a writer at random points, a
second writer, and damaged or missing files (each named in one error)."""

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import MODELS
from maxsim.errors import CorruptedError, InvalidInputError, LimitExceededError, LockedError
from maxsim.search import Retriever

TINY = str(MODELS / "st6-tiny-bert")
RUNS = 20

WRITER = """
import json, random, sys
import numpy as np
from maxsim.search import Retriever
r = Retriever.open(sys.argv[1])
rng, np_rng = random.Random(int(sys.argv[2])), np.random.default_rng(int(sys.argv[2]))
existing = list(json.loads(sys.argv[3]))
for step in range(100000):
    op = rng.choice(["add", "add", "upsert", "remove"] if existing else ["add"])
    if op == "remove":
        ids = rng.sample(existing, min(len(existing), rng.randint(1, 3)))
    else:
        ids = [f"{sys.argv[2]}-{step}-{j}" for j in range(rng.randint(1, 4))]
        if op == "upsert":
            ids[0] = rng.choice(existing)
    texts = [f"text {i} version {step} word{rng.randint(0, 50)}" for i in ids]
    print(json.dumps({"begin": op, "ids": ids, "texts": texts}), flush=True)
    if op == "remove":
        r.remove(ids)
        existing = [i for i in existing if i not in ids]
    else:
        vectors = [np_rng.standard_normal((rng.randint(1, 6), r.manifest["dim"])).astype("float32") for _ in ids]
        getattr(r, op)(texts, ids=ids, embeddings=vectors)
        existing += [i for i in ids if i not in existing]
    print(json.dumps({"ack": step}), flush=True)
"""


def state_of(folder):
    """id -> text, after checking that store, index and BM25 agree on one version."""
    with Retriever.open(folder) as r, r.versions.reading() as (snap, index):
        keys = {str(k) for (k,) in snap.conn.execute("SELECT key FROM passages")}
        assert set(index.ids()) == keys and len(index) == len(keys)
        ids, texts = snap.all_texts()
        assert r.bm25.get(snap.bm25, snap.all_texts).ids == ids
        return dict(zip(ids, texts))


def apply(state, record):
    if record["begin"] == "remove":
        for i in record["ids"]:
            state.pop(i)
    else:
        state.update(zip(record["ids"], record["texts"]))


def test_kill9_writer_at_random_points(tmp_path):
    folder = tmp_path / "r"
    Retriever.create(folder, model_name=TINY, hybrid=True).close()
    state, rng = {}, random.Random(0)
    for run in range(RUNS):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(folder), str(run),
                                 json.dumps(sorted(state))], stdout=subprocess.PIPE, text=True)
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # the first op is acknowledged: it is warm
        time.sleep(rng.uniform(0.0, 1.0))
        proc.kill()
        lines += proc.stdout.read().splitlines()
        proc.wait()
        records = [json.loads(line) for line in lines if line.strip()]
        in_flight = records[-1] if "begin" in records[-1] else None
        for record in records:
            if "begin" in record and record is not in_flight:
                apply(state, record)
        found = state_of(folder)
        if in_flight is not None and found != state:  # the op in flight committed whole, or not at all
            apply(state, in_flight)
        assert found == state, f"run {run}: acknowledged writes lost or a batch half-visible"
    assert state  # the runs wrote something


def test_second_writer_waits_then_names_the_holder(tmp_path, tiny_model):
    from maxsim.index.storage import writer_lock

    with Retriever.create(tmp_path / "r", tiny_model, model_name=TINY, hybrid=False) as r:
        r.lock_timeout = 0.3
        with writer_lock(r.folder, 1.0):
            with pytest.raises(LockedError, match=rf"held by another writer \(process {os.getpid()}\)"):
                r.add(["blocked"], ids=["b"])
        r.add(["free again"], ids=["b"])
        assert r.get("b").text == "free again"


def test_limits_checked_before_anything_is_written(tmp_path, tiny_model):
    with Retriever.create(tmp_path / "r", tiny_model, model_name=TINY, hybrid=False) as r:
        with pytest.raises(LimitExceededError, match="ids are limited to 512"):
            r.add(["x"], ids=["i" * 10_000])
        with pytest.raises(InvalidInputError, match=r"metadata\[0\]\['a'\] holds an invalid character"):
            r.add(["x"], ids=["s"], metadata=[{"a": "\ud800"}])
        deep = {}
        for _ in range(300):
            deep = {"d": deep}
        with pytest.raises(LimitExceededError, match="nested deeper than 16"):
            r.add(["x"], ids=["d"], metadata=[deep])
        with pytest.raises(InvalidInputError, match=r"ids\[0\] holds an invalid character"):
            r.add(["x"], ids=["\udfff"])
        with pytest.raises(InvalidInputError, match="query 0 holds an invalid character"):
            r.search("\ud800 wing")
        assert r.version == 0 and len(r) == 0


@pytest.fixture()
def built(tmp_path, tiny_model):
    folder = tmp_path / "r"
    with Retriever.create(folder, tiny_model, model_name=TINY, hybrid=True) as r:
        r.add(["lift of a thin wing", "heat flux in a slab"], ids=["a", "b"])
    return folder


def test_missing_store_is_named_never_recreated(built, tiny_model):
    os.unlink(built / "state.sqlite3")
    with pytest.raises(CorruptedError, match=r"state\.sqlite3 is missing"):
        Retriever.open(built, model=tiny_model)
    assert not (built / "state.sqlite3").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_store_is_named(built, tiny_model, damage):
    path = built / "state.sqlite3"
    assert not (built / "state.sqlite3-wal").exists()  # closed: everything is in the main file
    data = path.read_bytes()
    path.write_bytes(data[:100] if damage == "truncate" else b"\x00garbage" * 512)
    with pytest.raises(CorruptedError, match=r"state\.sqlite3: the document store is damaged"):
        with Retriever.open(built, model=tiny_model) as r:
            r.search("wing")


def test_deleted_row_is_named(built, tiny_model):
    with sqlite3.connect(built / "state.sqlite3") as db:
        db.execute("DELETE FROM documents WHERE id = 'a'")
    with Retriever.open(built, model=tiny_model) as r:
        with pytest.raises(CorruptedError, match=r"state\.sqlite3: documents list 1 passages, passages holds 2"):
            r.search("lift of a thin wing", k=2)


def test_truncated_index_file_is_named(built, tiny_model):
    vectors = next(p for p in (built / "index").iterdir() if p.name.endswith("-vectors.npy"))
    vectors.write_bytes(vectors.read_bytes()[:64])
    with Retriever.open(built, model=tiny_model) as r:
        with pytest.raises(CorruptedError, match=vectors.name):
            r.search("wing")


def test_embeddings_are_checked(tmp_path, tiny_model):
    with Retriever.create(tmp_path / "r", tiny_model, model_name=TINY, hybrid=False) as r:
        with pytest.raises(ValueError, match="dim 7"):
            r.add(["x"], ids=["x"], embeddings=[np.ones((2, 7), np.float32)])
        with pytest.raises(InvalidInputError, match="2 embeddings for 1 texts"):
            r.add(["x"], ids=["x"], embeddings=[np.ones((2, 32))] * 2)
        assert len(r) == 0


def test_reads_and_removes_do_not_load_the_model(built):
    with Retriever.open(built) as r:
        assert r.get("a").text == "lift of a thin wing" and len(r) == 2 and r.stats()["documents"] == 2
        r.remove(["b"])
        r.add(["given vectors"], ids=["v"], embeddings=[np.ones((3, r.manifest["dim"]), np.float32)])
        assert r._model is None  # nothing above needed the encoder
        assert [h.id for h in r.search("lift of a thin wing", k=1)[0]] == ["a"]  # this one loads it
        assert r._model is not None
