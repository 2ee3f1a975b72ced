"""Page readers: image files and PDF pages rendered with pypdfium2, ids and metadata, text layers, and
damaged or undecodable files named and skipped (or refused with strict=True)."""

import numpy as np
import pytest

from maxsim.io.documents import CorpusError
from maxsim.io.pages import PageRef, load_images, read_pages
from page_files import image, text_pdf

pytest.importorskip("pypdfium2")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "annual.pdf").write_bytes(text_pdf(["Revenue grew", "Assets and liabilities",
                                                                "Outlook"]))
    image(0).save(tmp_path / "scan.png")
    image(1).save(tmp_path / "photo.jpg")
    image(2).save(tmp_path / "figure.webp")
    image(3).save(tmp_path / "images.pdf", save_all=True, append_images=[image(4)])  # pillow: pages without text
    (tmp_path / "notes.txt").write_text("not a page")
    (tmp_path / ".hidden.png").write_bytes(b"")
    return tmp_path


def test_a_folder_reads_every_page_with_ids_metadata_and_text(folder):
    corpus = read_pages(folder, dpi=72, text=True)
    assert corpus.ids == ["figure.webp", "images.pdf#p1", "images.pdf#p2", "photo.jpg", "reports/annual.pdf#p1",
                          "reports/annual.pdf#p2", "reports/annual.pdf#p3", "scan.png"]
    assert corpus.metadata[4] == {"file": "reports/annual.pdf", "page": 1}
    assert corpus.metadata[0] == {"file": "figure.webp", "page": 1}
    assert corpus.texts[4:7] == ["Revenue grew", "Assets and liabilities", "Outlook"]
    assert corpus.texts[:4] == ["", "", "", ""]  # images, and a PDF of images: no text layer
    assert {s.where: s.reason for s in corpus.skipped} == {".hidden.png": "hidden", "notes.txt": "other type"}
    assert read_pages(folder).texts[4] == ""  # the text layer only when asked


def test_pages_render_at_the_dpi_and_images_decode(folder):
    corpus = read_pages(folder, dpi=144)
    annual = corpus.pages[corpus.ids.index("reports/annual.pdf#p2")]
    assert annual.size == (600, 400)  # 300 x 200 points at 144 dpi
    rendered = annual.image()
    assert rendered.mode == "RGB" and rendered.size == (600, 400)
    assert np.asarray(rendered).min() < 128  # the text is drawn
    scan = corpus.pages[corpus.ids.index("scan.png")]
    assert np.array_equal(np.asarray(scan.image()), np.asarray(image(0)))
    assert [im.size for im in load_images(corpus.pages)] == [p.size for p in corpus.pages]
    assert read_pages(folder, dpi=72).pages[corpus.ids.index("reports/annual.pdf#p1")].size == (300, 200)


def test_a_single_file_is_read_by_its_name(folder):
    corpus = read_pages(folder / "reports" / "annual.pdf")
    assert corpus.ids == ["annual.pdf#p1", "annual.pdf#p2", "annual.pdf#p3"]
    assert read_pages(folder / "scan.png").metadata == [{"file": "scan.png", "page": 1}]
    with pytest.raises(CorpusError, match="notes.txt"):
        read_pages(folder / "notes.txt")
    with pytest.raises(CorpusError, match="dpi"):
        read_pages(folder, dpi=0)


def test_damaged_files_are_named_and_skipped_or_refused_with_strict(folder):
    good = text_pdf(["one", "two"])
    (folder / "truncated.pdf").write_bytes(good[: len(good) // 3])
    (folder / "garbage.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    png = (folder / "scan.png").read_bytes()
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    (folder / "noise.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 300)
    (folder / "empty.png").write_bytes(b"")
    corpus = read_pages(folder)
    skipped = {s.where: s.reason for s in corpus.skipped}
    assert skipped["truncated.pdf"] == skipped["garbage.pdf"] == "damaged PDF"
    assert skipped["cut.png"] == skipped["noise.jpg"] == "undecodable image"
    assert skipped["empty.png"] == "empty"
    assert len(corpus) == 8 and not any(i.startswith(("cut", "noise", "garbage", "truncated")) for i in corpus.ids)
    with pytest.raises(CorpusError, match="cut.png|garbage.pdf|noise.jpg|truncated.pdf"):
        read_pages(folder, strict=True)


def test_a_folder_without_pages_says_what_was_skipped(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "b.png").write_bytes(b"not an image")
    with pytest.raises(CorpusError, match="holds no pages.*undecodable image"):
        read_pages(tmp_path)


def test_a_page_that_changed_since_reading_is_named(folder):
    corpus = read_pages(folder)
    ref = corpus.pages[corpus.ids.index("scan.png")]
    (folder / "scan.png").write_bytes(b"gone")
    with pytest.raises(CorpusError, match="scan.png"):
        ref.image()
    pdf_ref = PageRef(folder / "reports" / "annual.pdf", page=2, dpi=72)
    (folder / "reports" / "annual.pdf").write_bytes(b"%PDF-1.4 broken")
    with pytest.raises(CorpusError, match="annual.pdf page 2"):
        pdf_ref.image()
