"""Collections of pages through the Python API: a folder of images and a PDF indexed, searched (filters,
hybrid over the text layer, exact and PLAID, a sharded collection), explained (heatmaps against a direct
computation), updated, removed; page images stored, served and collected; text and pages never mixed."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

import maxsim
from maxsim.distributed import ShardedRetriever
from maxsim.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from maxsim.io.pages import read_pages
from maxsim.models.pages import PAGE_POOL_FACTOR
from maxsim.search import Collection, Retriever
from maxsim.search.folder import MANIFEST
from page_files import image, page_folder

pytest.importorskip("pypdfium2")
QUERY = "revenue of the year"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return read_pages(page_folder(tmp_path_factory.mktemp("pages")), dpi=72, text=True)


@pytest.fixture(scope="module")
def exact(page_model, page_checkpoint, pages, tmp_path_factory):
    """A page collection of ``pages`` (exact index)."""
    folder = tmp_path_factory.mktemp("exact") / "c"
    collection = Retriever.create(folder, page_model, model_name=str(page_checkpoint))
    collection.add(pages=pages)
    yield collection
    collection.close()


def page_files(collection):
    return sorted(os.listdir(collection.folder / "pages"))


def test_pages_are_documents_with_file_and_page(exact, pages):
    assert pages.ids == ["reports/annual.pdf#p1", "reports/annual.pdf#p2", "reports/annual.pdf#p3", "scans/a.png",
                         "scans/b.jpg", "scans/c.webp"]
    assert {s.where for s in pages.skipped} == {"broken.pdf", "scans/noise.png"}
    stats = exact.stats()
    assert stats["documents"] == stats["passages"] == 6 and stats["modality"] == "image"
    assert stats["pool_factor"] == PAGE_POOL_FACTOR and stats["page_bytes"]["images"] > 0
    manifest = json.loads((exact.folder / MANIFEST).read_text())
    assert manifest["format_version"] == 3 and manifest["modality"] == "image"
    assert exact.get("reports/annual.pdf#p2").metadata == {"file": "reports/annual.pdf", "page": 2}
    assert exact.get("reports/annual.pdf#p2").text == "Assets and liabilities"
    assert isinstance(exact, Collection) and len(page_files(exact)) == 6


def test_search_filters_and_hybrid_text_layer(exact, pages):
    hits = exact.search(QUERY, k=10)[0]
    assert sorted(h.id for h in hits) == sorted(pages.ids)
    assert {h.id: h.metadata for h in hits} == dict(zip(pages.ids, pages.metadata))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    only = exact.search(QUERY, k=6, filter={"file": "reports/annual.pdf"})[0]
    assert sorted(h.id for h in only) == [f"reports/annual.pdf#p{i}" for i in (1, 2, 3)]
    assert exact.search(QUERY, k=6, filter={"page": {"$gte": 2}})[0][0].metadata["page"] >= 2
    fused = exact.search("revenue", k=3, hybrid=True)[0]  # only the first PDF page has the word
    assert fused[0].id == "reports/annual.pdf#p1" and fused[0].text == "Revenue grew"


def stored_vectors(collection, doc_id):
    """The page's vectors as the index holds them (exact: float16; PLAID: decompressed)."""
    with collection.versions.reading() as (snap, index):
        ((key, *_),) = snap.doc_passages(doc_id)
        return index.get_embeddings([str(key)])[0]


def direct_heatmaps(q, vectors, cells):
    """Per query token and grid cell: the query vector's dot product with the page vector of that cell."""
    maps = np.full((len(q), *cells.shape), np.nan, dtype=np.float32)
    for r in range(cells.shape[0]):
        for c in range(cells.shape[1]):
            if cells[r, c] >= 0:
                maps[:, r, c] = q @ vectors[cells[r, c]]
    return maps


def test_explain_heatmaps_equal_a_direct_computation(exact, page_model, pages):
    q = page_model.encode_query([QUERY])[0]
    for doc_id in ("scans/b.jpg", "scans/c.webp", "reports/annual.pdf#p1"):
        e = exact.explain(QUERY, doc_id)
        fresh = page_model.encode_pages([pages.pages[pages.ids.index(doc_id)]], pool_factor=PAGE_POOL_FACTOR)[0]
        stored = stored_vectors(exact, doc_id)
        np.testing.assert_allclose(stored, fresh.vectors, atol=2e-3)  # float16 copies of the page's vectors
        maps = direct_heatmaps(q, stored, fresh.grid.cells)
        assert e["page"]["heatmaps"].shape == maps.shape == (len(q), e["page"]["rows"], e["page"]["cols"])
        np.testing.assert_allclose(e["page"]["heatmaps"], maps, atol=1e-5)
        np.testing.assert_allclose(e["page"]["heatmap"], maps.sum(axis=0), atol=1e-4)
        sims = q @ stored.T
        assert [s["document_index"] for s in e["alignment"]] == sims.argmax(axis=1).tolist()
        assert e["score"] == pytest.approx(sims.max(axis=1).sum(), abs=1e-4)
        hit = exact.search(QUERY, k=1, subset=[doc_id])[0][0]
        assert e["score"] == pytest.approx(hit.score, abs=1e-4)
        assert e["id"] == doc_id and e["text"] == e["passage"].text and len(e["query_tokens"]) == len(q)
    rows, cols = exact.explain(QUERY, "scans/b.jpg")["page"]["heatmap"].shape
    assert rows > cols  # a tall page has a tall grid (ColQwen2 keeps the aspect)


def test_page_images_are_stored_copies(exact, pages):
    stored = exact.page_image("scans/a.png")
    assert stored.media_type == "image/webp"
    with Image.open(io.BytesIO(stored.data)) as copy:
        assert copy.size == (48, 64)  # small pages are kept at their size
        original = pages.pages[pages.ids.index("scans/a.png")].image()
        blocks = [np.asarray(im.convert("RGB").resize((6, 8), Image.BOX), dtype=np.float32) for im in (copy, original)]
        assert np.abs(blocks[0] - blocks[1]).max() < 12  # lossy WebP: the same picture, noise aside
    with Image.open(io.BytesIO(exact.page_image("reports/annual.pdf#p1").data)) as copy:
        assert copy.size == (300, 200)
    with pytest.raises(NotFoundError, match="nope"):
        exact.page_image("nope")


def test_upsert_remove_and_image_files_collected(page_model, page_checkpoint, tmp_path):
    collection = maxsim.open(Retriever.create(tmp_path / "c", page_model, model_name=str(page_checkpoint)).folder)
    collection.add(pages=[image(0, (40, 60)), image(1, (60, 40))], ids=["a", "b"],
                   metadata=[{"file": "a.png", "page": 1}, {"file": "b.png", "page": 1}])
    first = collection.page_image("a").data
    with pytest.raises(AlreadyExistsError):
        collection.add(pages=[image(5)], ids=["a"])
    collection.upsert(pages=[image(2, (80, 50))], ids=["a"], texts=["re-rendered"])  # a re-rendered page
    assert collection.page_image("a").data != first and collection.get("a").text == "re-rendered"
    assert collection.get("a").metadata is None and len(page_files(collection)) == 3  # the old copy is still kept
    collection.remove(["b"])
    assert len(page_files(collection)) == 2  # a's first copy is gone two versions later; b's stays one more
    with pytest.raises(NotFoundError):
        collection.page_image("b")
    for orphan in ("0" * 64 + ".webp", ".tmp-123-x.webp"):  # what a write killed before its commit leaves
        (collection.folder / "pages" / orphan).write_bytes(b"partial")
    collection.add(pages=[image(2, (80, 50))], ids=["c"])  # the same page twice: one file
    assert len(page_files(collection)) == 1 and collection.page_image("c") == collection.page_image("a")
    assert [h.id for h in collection.search(QUERY, k=5)[0]] != [] and len(collection) == 2
    collection.close()


def test_a_bad_page_changes_nothing(exact, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    image(9).save(tmp_path / "good.png")
    before, files, version = len(exact), page_files(exact), exact.version
    with pytest.raises(InvalidInputError, match=r"pages\[1\].*bad.png.*undecodable"):
        exact.add(pages=[tmp_path / "good.png", tmp_path / "bad.png"], ids=["good", "bad"])
    with pytest.raises(InvalidInputError, match="is a PDF"):
        exact.add(pages=[tmp_path / "x.pdf"])
    for one in (tmp_path / "good.png", image(1), 3):
        with pytest.raises(InvalidInputError, match="pages must be a list of pages"):
            exact.add(pages=one)
    with pytest.raises(InvalidInputError, match="2 texts for 1 pages"):
        exact.add(pages=[image(1)], texts=["a", "b"], ids=["x"])
    assert (len(exact), page_files(exact), exact.version) == (before, files, version)


def test_text_and_pages_are_never_mixed(exact, page_model, tiny_model, tmp_path):
    with pytest.raises(InvalidInputError, match="is a page collection: pass its pages with pages="):
        exact.add(["a text"], ids=["t"])
    text = Retriever.create(tmp_path / "text", tiny_model, model_name="tiny")
    with pytest.raises(InvalidInputError, match="is a text collection: it takes texts, not pages"):
        text.add(pages=[image(0)])
    with pytest.raises(InvalidInputError, match="is a text collection but the model encodes pages"):
        Retriever.open(text.folder, model=page_model)
    with pytest.raises(InvalidInputError, match="is a page collection but the model encodes texts"):
        Retriever.open(exact.folder, model=tiny_model)
    with pytest.raises(NotFoundError, match="is a text collection"):
        text.page_image("t")
    text.close()


def test_a_format_2_text_folder_still_opens(tiny_model, tmp_path):
    folder = Retriever.create(tmp_path / "old", tiny_model, model_name="tiny").folder
    maxsim.open(folder, model=tiny_model).add(["Lift on a swept wing."], ids=["w"])
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["modality"], manifest["crc32"]  # as version 2 wrote it: no modality, no checksum
    (folder / MANIFEST).write_text(json.dumps({**manifest, "format_version": 2}))
    with maxsim.open(folder, model=tiny_model) as old:
        assert old.modality == "text" and old.search("swept wing", k=1)[0][0].id == "w"
        old.add(["Buckling of shells."], ids=["s"])
        assert len(old) == 2 and old.stats()["modality"] == "text"


def test_a_sharded_page_collection_answers_as_one_folder(exact, page_model, page_checkpoint, pages, tmp_path):
    sharded = ShardedRetriever.create(tmp_path / "sharded", 2, page_model, model_name=str(page_checkpoint))
    sharded.add(pages=pages)
    assert sharded.stats()["modality"] == "image" and sharded.stats()["page_bytes"]["images"] > 0
    for where, hybrid in ((None, False), ({"file": "reports/annual.pdf"}, False), (None, True)):
        ours = [(h.id, h.metadata, round(h.score, 4)) for h in sharded.search(QUERY, k=4, filter=where,
                                                                              hybrid=hybrid)[0]]
        assert ours == [(h.id, h.metadata, round(h.score, 4)) for h in exact.search(QUERY, k=4, filter=where,
                                                                                     hybrid=hybrid)[0]]
    e, f = sharded.explain(QUERY, "scans/c.webp"), exact.explain(QUERY, "scans/c.webp")
    np.testing.assert_allclose(e["page"]["heatmaps"], f["page"]["heatmaps"], atol=1e-5)
    assert sharded.page_image("scans/a.png") == exact.page_image("scans/a.png")
    sharded.upsert(pages=[image(3)], ids=["scans/a.png"], metadata=[{"file": "scans/a.png", "page": 1}])
    sharded.remove(["reports/annual.pdf#p3"])
    assert len(sharded) == 5 and sharded.page_image("scans/a.png") != exact.page_image("scans/a.png")
    with pytest.raises(InvalidInputError, match="page collection"):
        sharded.add(["text"])
    sharded.close()
    with maxsim.open(tmp_path / "sharded") as reopened:
        assert reopened.modality == "image" and reopened.get("scans/a.png").metadata["file"] == "scans/a.png"


def test_plaid_explains_with_the_decompressed_vectors(page_model, page_checkpoint, pages, tmp_path):
    folder = Retriever.create(tmp_path / "plaid", page_model, model_name=str(page_checkpoint), index="plaid")
    folder.add(pages=pages)
    only = folder.search(QUERY, k=6, filter={"file": "reports/annual.pdf"})[0]
    assert sorted(h.id for h in only) == [f"reports/annual.pdf#p{i}" for i in (1, 2, 3)]
    fresh = page_model.encode_pages([pages.pages[pages.ids.index("scans/c.webp")]], pool_factor=PAGE_POOL_FACTOR)[0]
    q = page_model.encode_query([QUERY])[0]
    maps = direct_heatmaps(q, stored_vectors(folder, "scans/c.webp"), fresh.grid.cells)
    np.testing.assert_allclose(folder.explain(QUERY, "scans/c.webp")["page"]["heatmaps"], maps, atol=1e-5)
    folder.close()


def test_langchain_returns_the_page_reference(exact):
    langchain = pytest.importorskip("maxsim.integrations.langchain")
    documents = langchain.MaxsimRetriever(retriever=exact, k=2, filter={"file": "scans/b.jpg"}).invoke(QUERY)
    assert [(d.id, d.metadata["file"], d.metadata["page"]) for d in documents] == [("scans/b.jpg", "scans/b.jpg", 1)]
