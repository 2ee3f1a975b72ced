"""Damage inside a retriever folder is a ``CorruptedError`` naming the file (HTTP 503, CLI exit 5) before it
changes an answer, or a finding of ``maxsim check``; ``maxsim check --repair`` rebuilds what can be rebuilt.
Each case below gave a wrong answer, a 500 or a raw error before the store kept row checksums."""

import sqlite3

import httpx
import pytest
from typer.testing import CliRunner

from conftest import TINY_MODEL
from corruption import without_checksums
from maxsim.cli import app as cli
from maxsim.errors import CorruptedError
from maxsim.opener import check, repair
from maxsim.search import Retriever
from maxsim.server import LiveRetriever, create_app
from test_server import serve_in_thread

TINY = str(TINY_MODEL)
LABS = ["ames", "langley", "glenn"]


@pytest.fixture()
def folder(tmp_path, tiny_model):
    """60 documents, 20 of them with lab "ames", written in two commits (hybrid, exact)."""
    path = tmp_path / "r"
    with Retriever.create(path, tiny_model, model_name=TINY, hybrid=True) as r:
        for part in (range(0, 30), range(30, 60)):
            r.add([f"Note {i} on wing lift and its test run {i}." for i in part], ids=[f"d{i}" for i in part],
                  metadata=[{"lab": LABS[i % 3], "year": 2000 + i % 10} for i in part])
    return path


def ames(collection) -> list[str]:
    return sorted(hit.id for hit in collection.search("wing lift", k=60, filter={"lab": "ames"})[0])


def edit_pages(path, name: str, old: bytes, new: bytes) -> int:
    """Replace ``old`` by ``new`` (same length) inside the pages of b-tree ``name`` of the SQLite file
    ``path``, keeping every page's structure: what a flipped bit in a value does. Returns the count."""
    with sqlite3.connect(path) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = [row[0] for row in db.execute("SELECT pageno FROM dbstat WHERE name = ?", (name,))]
    data, done = bytearray(path.read_bytes()), 0
    for page in pages:
        block = bytes(data[(page - 1) * size: page * size])
        done += block.count(old)
        data[(page - 1) * size: page * size] = block.replace(old, new)
    path.write_bytes(bytes(data))
    return done


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_changed_value_in_the_metadata_index_never_drops_hits(folder, tiny_model):
    with Retriever.open(folder, model=tiny_model) as r:
        expected = ames(r)
    assert len(expected) == 20
    assert edit_pages(folder / "state.sqlite3", "fields_value", b"ames", b"amez") > 0  # SQLite's structure intact
    with Retriever.open(folder, model=tiny_model) as r:
        with pytest.raises(CorruptedError, match=r"state\.sqlite3: a fields row .* fails its checksum"):
            ames(r)  # before checksums: 0 of the 20 documents, no error
    listed = run("list", folder, "--where", "lab=ames")
    assert listed.exit_code == 5 and "state.sqlite3" in listed.output, listed.output
    found = run("check", folder)
    assert found.exit_code == 5 and "repairable" in found.output, found.output
    repaired = run("check", folder, "--repair")
    assert repaired.exit_code == 0 and "repaired:" in repaired.output and "ok:" in repaired.output, repaired.output
    with Retriever.open(folder, model=tiny_model) as r:
        assert ames(r) == expected and r.version == 3  # the repair is a new version


def test_a_damaged_value_over_http_is_503_naming_the_file(folder, tiny_model):
    live = LiveRetriever(folder, tiny_model, readers=1)
    try:
        with serve_in_thread(create_app(live)) as base:
            edit_pages(folder / "state.sqlite3", "fields_value", b"ames", b"amez")
            answer = httpx.post(f"{base}/search", json={"queries": ["wing"], "k": 60, "filter": {"lab": "ames"}},
                                timeout=120)
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith("state.sqlite3: ") and str(folder) not in answer.text
    finally:
        live.close()


def test_a_damaged_document_is_named_on_read_and_write(folder, tiny_model):
    assert edit_pages(folder / "state.sqlite3", "documents", b"Note 7 on", b"Note 7 in") == 1
    with Retriever.open(folder, model=tiny_model) as r:
        with pytest.raises(CorruptedError, match=r"state\.sqlite3: a documents row \('d7'\) fails its checksum"):
            r.get("d7")  # before checksums: the changed text, as if it were stored
        with pytest.raises(CorruptedError, match=r"state\.sqlite3"):
            r.upsert(["another note"], ids=["d8"])


def test_undecodable_text_is_503_for_reads_and_writes_not_500(folder, tiny_model):
    live = LiveRetriever(folder, tiny_model, readers=1)
    try:
        with serve_in_thread(create_app(live)) as base:
            edit_pages(folder / "state.sqlite3", "documents", b"Note 5 on", b"Note 5 \xff\xfe")  # invalid UTF-8
            for method, path, body in [("GET", "/documents/d5", None), ("PUT", "/documents/d9", {"text": "x y z"}),
                                       ("POST", "/search", {"queries": ["wing"]})]:
                answer = httpx.request(method, f"{base}{path}", json=body, timeout=120)
                assert answer.status_code == 503 and "state.sqlite3" in answer.json()["detail"], answer.text
    finally:
        live.close()
    with pytest.raises(CorruptedError, match=r"state\.sqlite3"):  # and a service does not start on it
        LiveRetriever(folder, tiny_model, readers=1)


def test_a_damaged_commit_row_is_exit_5_naming_the_store(folder):
    assert edit_pages(folder / "state.sqlite3", "commits", b'"files"', b'"filez"') >= 1
    listed = run("list", folder)
    assert listed.exit_code == 5 and "state.sqlite3: a commits row" in listed.output, listed.output
    found = run("check", folder)
    assert found.exit_code == 5 and "repairable" not in found.output  # a commit cannot be rebuilt


def test_a_changed_manifest_is_named(folder, tiny_model):
    manifest = folder / "retriever.json"
    manifest.write_text(manifest.read_text().replace('"dim":32', '"dim":33'))  # valid JSON, one digit off
    with pytest.raises(CorruptedError, match=r"retriever\.json: fails its checksum"):
        Retriever.open(folder, model=tiny_model)
    assert run("check", folder).exit_code == 5


def test_check_names_index_files_and_bm25_and_repairs_bm25(folder, tiny_model):
    assert check(folder) == [] and run("check", folder).exit_code == 0
    for bm25 in (folder / "bm25").rglob("*.npy"):  # every copy: the newest one is among them
        bm25.write_bytes(bm25.read_bytes()[:-4] + b"\x00\x01\x02\x03")
    with Retriever.open(folder, model=tiny_model) as r:
        hybrid = [h.id for h in r.search("wing lift test run 7", k=5, hybrid=True)[0]]  # rebuilt from the texts
    findings = check(folder)
    assert [f.repairable for f in findings] == [True] and "BM25" in findings[0].problem
    assert "BM25 rebuilt" in repair(folder)[-1] and check(folder) == []
    with Retriever.open(folder, model=tiny_model) as r:
        assert [h.id for h in r.search("wing lift test run 7", k=5, hybrid=True)[0]] == hybrid
    vectors = next(p for p in (folder / "index").iterdir() if p.name.endswith("-vectors.npy"))
    data = bytearray(vectors.read_bytes())
    data[-10] ^= 0x40
    vectors.write_bytes(bytes(data))
    findings = check(folder)
    assert [f.file.name for f in findings] == [vectors.name] and not findings[0].repairable


def test_a_store_without_checksums_is_upgraded(folder, tiny_model):
    without_checksums(folder / "state.sqlite3")
    with Retriever.open(folder, model=tiny_model) as r:
        assert len(ames(r)) == 20 and r.get("d3").metadata == {"lab": "ames", "year": 2003}
        r.remove(["d3"])
    assert check(folder) == []


def test_the_sharded_collection_is_checked_and_repaired_shard_by_shard(tmp_path, tiny_model):
    from maxsim.distributed import ShardedRetriever

    with ShardedRetriever.create(tmp_path / "c", 2, tiny_model, model_name=TINY, hybrid=True) as c:
        c.add([f"Note {i} on wing lift." for i in range(20)], ids=[f"d{i}" for i in range(20)],
              metadata=[{"lab": LABS[i % 3]} for i in range(20)])
        expected = ames(c)
    assert check(tmp_path / "c") == []
    shard = tmp_path / "c" / "shard-001"
    assert edit_pages(shard / "state.sqlite3", "fields_value", b"ames", b"amez") > 0
    findings = check(tmp_path / "c")
    assert [(f.file, f.repairable) for f in findings][:1] == [(shard / "state.sqlite3", True)]
    assert repair(tmp_path / "c") and check(tmp_path / "c") == []
    with ShardedRetriever.open(tmp_path / "c", model=tiny_model) as c:
        assert ames(c) == expected


def test_check_of_a_missing_folder_is_exit_3(tmp_path):
    missing = run("check", tmp_path / "nothing")
    assert missing.exit_code == 3 and "is not a folder" in missing.output
