"""maxsim.io readers: folders (hidden, empty, other types, encodings, HTML, PDF, --strict), tables
(.jsonl/.csv/.parquet with Columns), and one BEIR folder read the same through every entry point."""

import json

import pytest

from conftest import CRANFIELD
from maxsim.errors import InvalidInputError
from maxsim.io import Columns, CorpusError, read_corpus


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer is ``text`` (Helvetica), with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "objects" / "x.txt").write_text("inside git")
    (folder / ".hidden.md").write_text("hidden note")
    (folder / "a.md").write_text("# Wings\n\nLift on a wing.")
    (folder / "bom.txt").write_bytes("\ufeffsome text with a BOM".encode("utf-8"))
    (folder / "latin.txt").write_bytes("café crème brûlée".encode("cp1252"))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text(" \n\t\n")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 10)
    (folder / "image.png").write_bytes(b"\x89PNG")
    (folder / "sub" / "page.html").write_text(
        "<html><head><title>Flow &amp; heat</title><style>p {color: red}</style></head><body>"
        "<h1>Boundary layers</h1><p>Heat transfer<br>in laminar flow.</p><script>var x = 1;</script></body></html>")
    (folder / "sub" / "paper.pdf").write_bytes(minimal_pdf("Buckling of thin cylindrical shells"))
    return folder


def test_folder_reads_text_html_pdf_and_reports_the_rest(notes):
    corpus = read_corpus(notes)
    docs = dict(zip(corpus.ids, corpus.texts))
    assert sorted(docs) == ["a.md", "bom.txt", "latin.txt", "sub/page.html", "sub/paper.pdf"]
    assert docs["a.md"] == "# Wings\n\nLift on a wing." and docs["bom.txt"] == "some text with a BOM"
    assert docs["latin.txt"] == "café crème brûlée" and corpus.decoded == [("latin.txt", "cp1252")]
    assert docs["sub/page.html"] == "Flow & heat\n\nBoundary layers\n\nHeat transfer\nin laminar flow."
    assert corpus.metadata[corpus.ids.index("sub/page.html")] == {"title": "Flow & heat"}
    assert docs["sub/paper.pdf"] == "Buckling of thin cylindrical shells"
    assert corpus.metadata[corpus.ids.index("sub/paper.pdf")] == {"pages": 1}
    skipped = {s.where: s.reason for s in corpus.skipped}
    assert skipped == {".git/": "hidden", ".hidden.md": "hidden", "empty.txt": "empty", "blank.md": "no text",
                       "binary.txt": "binary", "image.png": "other type"}


def test_strict_stops_at_the_first_bad_file_naming_it(notes):
    with pytest.raises(CorpusError, match=r"binary\.txt: binary"):
        read_corpus(notes, strict=True)
    (notes / "binary.txt").unlink()
    with pytest.raises(CorpusError, match=r"latin\.txt: not UTF-8 text \(it reads as cp1252\)"):
        read_corpus(notes, strict=True)
    (notes / "latin.txt").unlink()
    assert len(read_corpus(notes, strict=True)) == 4  # empty and hidden files are still skipped


def test_a_folder_of_nothing_says_what_was_skipped(tmp_path):
    (tmp_path / "empty.md").write_text("")
    with pytest.raises(CorpusError, match=r"holds no documents \(skipped \{'empty': 1\}\)"):
        read_corpus(tmp_path)


def test_tables_with_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"doc": "a", "body": "first text", "name": "Alpha", "year": 2020, "lang": "en"},
            {"doc": "b", "body": "second text", "name": "", "year": 1999, "lang": "fr"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "t.csv").write_text("doc,body,name,year,lang\na,first text,Alpha,2020,en\nb,second text,,1999,fr\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    columns = Columns(id="doc", text="body", title="name", metadata=("year", "lang"))
    for name in ("t.jsonl", "t.csv", "t.parquet"):
        corpus = read_corpus(tmp_path / name, columns)
        assert corpus.ids == ["a", "b"] and corpus.texts == ["Alpha first text", "second text"], name
        assert corpus.metadata == [{"year": 2020, "lang": "en"}, {"year": 1999, "lang": "fr"}], name
    default = read_corpus(tmp_path / "t.csv", Columns(id="doc", text="body", title=None))
    assert default.texts[0] == "first text" and default.metadata[0] == {"name": "Alpha", "year": 2020, "lang": "en"}
    with pytest.raises(CorpusError, match=r"metadata column\(s\) \['yaer'\] are in no record"):
        read_corpus(tmp_path / "t.jsonl", Columns(id="doc", text="body", metadata=("yaer",)))
    with pytest.raises(CorpusError, match=r"t\.jsonl:1: missing id; give each record an 'key' field"):
        read_corpus(tmp_path / "t.jsonl", Columns(id="key", text="body"))


def test_records_without_text_are_skipped_or_strict(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "kept"}\n{"id": "b", "text": "  "}\n\n{"id": "c", "text": "", "title": "T"}\n')
    corpus = read_corpus(path)
    assert corpus.ids == ["a", "c"] and corpus.texts == ["kept", "T"]
    assert [(s.where, s.reason) for s in corpus.skipped] == [(f"{path}:2", "no text")]
    with pytest.raises(CorpusError, match=r"docs\.jsonl:2: the record has no text"):
        read_corpus(path, strict=True)


@pytest.mark.parametrize("content, words", [
    (b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n', r"docs\.jsonl:2: not UTF-8 text"),
    (b'{"id": "a", "text": "ok"}\n{"id": "a", "text": "again"}\n', r"docs\.jsonl:2: id 'a' is already used at .*:1"),
    (b'{"id": "a", "text": 3}\n', r"docs\.jsonl:1: field 'text' is a int, not a string"),
])
def test_bad_records_name_file_and_line(tmp_path, content, words):
    (tmp_path / "docs.jsonl").write_bytes(content)
    with pytest.raises(CorpusError, match=words) as caught:
        read_corpus(tmp_path / "docs.jsonl")
    assert isinstance(caught.value, InvalidInputError) and caught.value.exit_code == 2


def test_one_beir_folder_reads_the_same_through_every_entry_point(tmp_path):
    from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder
    from maxsim.evaluation.loaders import document_text
    from maxsim.training.data import load_rows

    expected = {}
    for line in (CRANFIELD / "corpus.jsonl").open():
        row = json.loads(line)
        expected[row["_id"]] = f"{row['title']} {row['text']}" if row["title"] else row["text"]
    empty = sorted(d for d, text in expected.items() if not text.strip())
    assert empty == ["471", "995"]  # Cranfield has two empty records: an index skips them, and says so
    index_side = read_corpus(CRANFIELD)  # maxsim index, maxsim add, the quickstart (its sample is a BEIR folder)
    assert [s.reason for s in index_side.skipped] == ["no text"] * 2
    assert dict(zip(index_side.ids, index_side.texts)) == {d: t for d, t in expected.items() if d not in empty}
    queries, corpus, qrels = load_beir_folder(CRANFIELD)  # maxsim evaluate
    assert {d: document_text(v) for d, v in corpus.items()} == expected
    evaluator = InformationRetrievalEvaluator(queries, corpus, qrels, name="cran")
    assert dict(zip(evaluator.doc_ids, evaluator.documents)) == expected
    some = list(expected)[:3]  # training rows by ids, with the BEIR corpus as the documents table
    (tmp_path / "rows.jsonl").write_text(json.dumps({"query_id": "1", "document_ids": some, "scores": [3, 2, 1]}))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"query_id": "1", "text": "a question"}))
    rows = load_rows(tmp_path / "rows.jsonl", queries=tmp_path / "queries.jsonl", documents=CRANFIELD / "corpus.jsonl")
    assert rows[0]["documents"] == [expected[d] for d in some]


def test_the_shipped_sample_reads_as_beir():
    from maxsim.cli.quickstart import SAMPLE

    corpus = read_corpus(SAMPLE)
    first = json.loads((SAMPLE / "corpus.jsonl").open().readline())
    assert corpus.texts[0] == f"{first['title']} {first['text']}" and len(corpus) == 400
