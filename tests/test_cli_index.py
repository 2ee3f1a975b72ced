"""`maxsim index` options and summary, `maxsim add [--upsert]`, `maxsim remove` (real CLI runs)."""

import json

import pytest
from typer.testing import CliRunner

from conftest import TINY_MODEL
from maxsim.cli import app
from maxsim.search import Retriever

TINY = str(TINY_MODEL)
DOCS = [("wing", "Lift on a swept wing at high angles of attack."),
        ("shell", "Buckling of thin cylindrical shells under axial load."),
        ("heat", "Heat transfer in a laminar boundary layer.")]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def contents(folder):
    with Retriever.open(folder, device="cpu") as r:
        with r.versions.reading() as (snap, _):
            ids, texts = snap.all_texts()
        return {i: (t, r.get(i).metadata) for i, t in zip(ids, texts)}, r.stats()


def test_index_summary_counts_read_skipped_and_split(tmp_path):
    folder = tmp_path / "notes"
    (folder / ".obsidian").mkdir(parents=True)
    (folder / ".obsidian" / "app.md").write_text("settings")
    (folder / "empty.md").write_text("")
    (folder / "latin.txt").write_bytes("Café au lait. Crème brûlée.".encode("cp1252"))
    (folder / "long.md").write_text("\n\n".join(f"Paragraph {i} about wings and lift." for i in range(60)))
    (folder / "short.md").write_text("One short note.")
    out = tmp_path / "index"
    result = invoke("index", folder, "--output", out, "--model", TINY, "--no-hybrid")
    assert result.exit_code == 0, result.output
    table = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines()
             if line.count("│") == 3}
    assert table["documents read"] == "3" and table["skipped: empty"] == "1" and table["skipped: hidden"] == "1"
    assert table["read with a detected encoding"] == "1 (cp1252)"
    found, stats = contents(out)
    assert stats["split_documents"] == 1 and stats["passages"] > 3
    assert table["documents split into passages"] == "1" and table["passages indexed"] == str(stats["passages"])
    assert found["latin.txt"][0] == "Café au lait. Crème brûlée."
    assert "skipped .obsidian/: hidden" in result.output and "skipped empty.md: empty" in result.output
    strict = invoke("index", folder, "--output", tmp_path / "strict", "--model", TINY, "--strict")
    assert strict.exit_code == 2 and "latin.txt: not UTF-8 text" in strict.output
    assert not (tmp_path / "strict").exists()


def test_no_passages_warns_with_the_count(tmp_path):
    docs = write_jsonl(tmp_path / "docs.jsonl", [{"id": "long", "text": "wing lift " * 400}, {"id": "s", "text": "x"}])
    result = invoke("index", docs, "--output", tmp_path / "cut", "--model", TINY, "--no-passages")
    assert result.exit_code == 0, result.output
    assert "warning: 1 of 2 documents are longer than the model's" in result.output
    assert contents(tmp_path / "cut")[1]["passages"] == 2


def test_columns_pool_factor_and_index_params(tmp_path):
    table = tmp_path / "papers.csv"
    table.write_text("key,body,heading,year,lang\n" + "".join(f"{i},{t},Title {i},{1990 + n},en\n"
                                                             for n, (i, t) in enumerate(DOCS)))
    out = tmp_path / "plaid"
    result = invoke("index", table, "--output", out, "--model", TINY, "--index", "plaid", "--nbits", 2,
                    "--index-param", "kmeans_niters=2", "--pool-factor", 2, "--id-column", "key", "--text-column",
                    "body", "--title-column", "heading", "--metadata-column", "year", "--device", "cpu")
    assert result.exit_code == 0, result.output
    found, stats = contents(out)
    assert found["wing"] == (f"Title wing {DOCS[0][1]}", {"year": 1990}) and stats["pool_factor"] == 2
    with Retriever.open(out, device="cpu") as r, r.versions.reading() as (_, index):
        assert index.params["nbits"] == 2 and index.params["kmeans_niters"] == 2
    bad = invoke("index", table, "--output", tmp_path / "bad", "--model", TINY, "--index-param", "nbits")
    assert bad.exit_code == 2 and "expected KEY=VALUE" in bad.output


def test_add_upsert_remove(tmp_path):
    out = tmp_path / "index"
    first = write_jsonl(tmp_path / "first.jsonl", [{"_id": i, "text": t} for i, t in DOCS[:2]])
    assert invoke("index", first, "--output", out, "--model", TINY).exit_code == 0
    more = write_jsonl(tmp_path / "more.jsonl", [{"_id": "heat", "text": DOCS[2][1], "lang": "en"},
                                                 {"_id": "wing", "text": "Wing flutter.", "lang": "de"}])
    taken = invoke("add", out, more)
    assert taken.exit_code == 4 and "'wing' is already in" in taken.output
    assert set(contents(out)[0]) == {"wing", "shell"}  # nothing was added
    upserted = invoke("add", out, more, "--upsert")
    assert upserted.exit_code == 0, upserted.output
    assert "documents in the folder" in upserted.output and "2 -> 3" in upserted.output
    found, _ = contents(out)
    assert found == {"wing": ("Wing flutter.", {"lang": "de"}), "shell": (DOCS[1][1], None),
                     "heat": (DOCS[2][1], {"lang": "en"})}
    unknown = invoke("remove", out, "shell", "nope")
    assert unknown.exit_code == 3 and "'nope'" in unknown.output and "shell" in contents(out)[0]
    removed = invoke("remove", out, "shell", "heat")
    assert removed.exit_code == 0 and "1 left" in removed.output
    assert set(contents(out)[0]) == {"wing"}
    lines = invoke("search", out, "flutter", "--json", "--local").output.splitlines()
    hits = [json.loads(line[line.index('{"rank"'):]) for line in lines if '{"rank"' in line]  # after progress bars
    assert [h["id"] for h in hits] == ["wing"]


@pytest.mark.parametrize("args, code, words", [
    (["add", "{tmp}/missing", "{tmp}/docs.jsonl"], 3, "not a retriever folder"),
    (["add", "{tmp}/index", "{tmp}/nothing.jsonl"], 3, "does not exist"),
])
def test_add_errors_name_the_item(tmp_path, args, code, words):
    write_jsonl(tmp_path / "docs.jsonl", [{"_id": "a", "text": "text"}])
    assert invoke("index", tmp_path / "docs.jsonl", "--output", tmp_path / "index", "--model", TINY).exit_code == 0
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code and words in result.output, result.output
