"""Page collections on the command line (real CLI runs): `maxsim index` of a PDF and a folder of images with
a page model, `maxsim search` with a filter, `maxsim add --upsert` of a re-rendered page, `maxsim remove`;
damaged files named and skipped, or the run stopped with --strict, and nothing indexed lost."""

import io
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

import maxsim
from maxsim.cli import app
from page_files import image, page_folder, text_pdf

pytest.importorskip("pypdfium2")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def table(output: str) -> dict:
    """The summary table's rows, label -> value."""
    return {line.split("│")[1].strip(): line.split("│")[2].strip() for line in output.splitlines()
            if line.count("│") == 3}


def hits(index, query, *args):
    result = invoke("search", index, query, "--json", "--local", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def indexed(page_checkpoint, tmp_path):
    """(pages folder, collection folder) built by `maxsim index`, and the command's output."""
    pages, out = page_folder(tmp_path / "pages"), tmp_path / "index"
    result = invoke("index", pages, "--output", out, "--model", page_checkpoint, "--dpi", 72)
    assert result.exit_code == 0, result.output
    return pages, out, result.output


def test_index_search_filter_upsert_remove(indexed, tmp_path):
    pages, out, output = indexed
    rows = table(output)
    assert rows["documents read"] == "6" and rows["documents in the folder"] == "6"
    assert rows["skipped: damaged PDF"] == "1" and rows["skipped: undecodable image"] == "1"
    assert "skipped broken.pdf: damaged PDF" in output and "skipped scans/noise.png: undecodable image" in output
    assert "index" in rows["bytes per page"] and "page image" in rows["bytes per page"]
    with maxsim.open(out) as collection:
        stats = collection.stats()
        assert stats["modality"] == "image" and stats["pool_factor"] == 3 and stats["hybrid"]
        assert collection.get("reports/annual.pdf#p1").text == "Revenue grew"  # the text layer, for BM25
        before = collection.page_image("scans/a.png")

    found = hits(out, "revenue", "--k", 10, "--where", "file = reports/annual.pdf")
    assert sorted(h["id"] for h in found) == [f"reports/annual.pdf#p{i}" for i in (1, 2, 3)]
    assert {h["metadata"]["file"] for h in found} == {"reports/annual.pdf"}
    assert hits(out, "revenue", "--k", 1, "--hybrid")[0]["id"] == "reports/annual.pdf#p1"

    rerendered = tmp_path / "rerendered"
    (rerendered / "scans").mkdir(parents=True)
    image(7, (64, 48)).save(rerendered / "scans" / "a.png")  # the same file, changed: same id
    result = invoke("add", out, rerendered, "--upsert")
    assert result.exit_code == 0, result.output
    assert table(result.output)["documents in the folder"] == "6 -> 6"
    with maxsim.open(out) as collection:
        after = collection.page_image("scans/a.png")
        assert after != before and Image.open(io.BytesIO(after.data)).size == (64, 48)

    result = invoke("remove", out, "reports/annual.pdf#p2", "scans/b.jpg")
    assert result.exit_code == 0, result.output
    with maxsim.open(out) as collection:
        assert sorted(d.id for d in collection.documents()) == ["reports/annual.pdf#p1", "reports/annual.pdf#p3",
                                                                "scans/a.png", "scans/c.webp"]


def test_damaged_files_are_skipped_or_stop_the_run_with_strict(indexed, page_checkpoint, tmp_path):
    pages, out, _ = indexed
    result = invoke("index", pages, "--output", tmp_path / "strict", "--model", page_checkpoint, "--strict")
    assert result.exit_code == 2 and "broken.pdf: damaged PDF" in result.output and "--strict" in result.output
    assert not (tmp_path / "strict").exists()

    more = tmp_path / "more"
    more.mkdir()
    (more / "new.pdf").write_bytes(text_pdf(["Quarterly outlook", "Appendix"]))
    (more / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 300)
    result = invoke("add", out, more, "--strict")
    assert result.exit_code == 2 and "cut.jpg: undecodable image" in result.output
    result = invoke("add", out, more)
    assert result.exit_code == 0, result.output
    assert "skipped cut.jpg: undecodable image" in result.output
    assert table(result.output)["documents in the folder"] == "6 -> 8"
    result = invoke("add", out, more)  # ids taken: refused, nothing lost
    assert result.exit_code == 4 and "new.pdf#p1" in result.output
    with maxsim.open(out) as collection:
        assert len(collection) == 8 and collection.get("new.pdf#p2").text == "Appendix"


def test_page_inputs_and_models_are_checked(indexed, page_checkpoint, tmp_path):
    _, out, _ = indexed
    table_file = tmp_path / "docs.jsonl"
    table_file.write_text('{"_id": "d", "text": "a text"}\n')
    result = invoke("add", out, table_file)
    assert result.exit_code == 2 and "docs.jsonl: not a folder or a page file" in result.output
    result = invoke("index", tmp_path, "--output", tmp_path / "ray", "--model", page_checkpoint, "--ray")
    assert result.exit_code == 2 and "page model" in result.output
