"""A page collection behind the HTTP service (real uvicorn): search with filters, explain answered as numbers
(the heatmaps of the Python API, NaN as null), GET /documents/{id}/image, removal; text-only routes refused
clearly, and no page image in a text collection."""

import base64
import contextlib
import io
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from PIL import Image

from maxsim.io.pages import read_pages
from maxsim.search import Retriever
from maxsim.server import LiveRetriever, create_app
from page_files import page_folder
from test_server import AUTH, KEY, LIMITS, build_index, serve_in_thread

pytest.importorskip("pypdfium2")
QUERY = "revenue of the year"


def image_path(doc_id: str) -> str:
    return f"/documents/{quote(doc_id, safe='')}/image"  # ids hold "/" and "#"


@contextlib.contextmanager
def served_pages(model, checkpoint, root):
    """The service (with the API key) over a page collection of ``page_folder``; yields (url, collection)."""
    with Retriever.create(root / "index", model, model_name=str(checkpoint)) as collection:
        collection.add(pages=read_pages(page_folder(root / "pages"), dpi=72, text=True))
    live = LiveRetriever(root / "index", model)
    try:
        with serve_in_thread(create_app(live, api_key=KEY, limits=LIMITS)) as url:
            yield url, live.collection
    finally:
        live.close()


@pytest.fixture(scope="module")
def pages_service(page_model, page_checkpoint, tmp_path_factory):
    with served_pages(page_model, page_checkpoint, tmp_path_factory.mktemp("page-service")) as (url, collection):
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            yield client, collection


def test_health_stats_search_and_filter(pages_service):
    client, _ = pages_service
    assert client.get("/health").json() == {"status": "ok", "documents": 6, "auth": True, "modality": "image"}
    stats = client.get("/stats").json()
    assert stats["modality"] == "image" and stats["page_bytes"]["images"] > 0 and stats["pool_factor"] == 3
    hits = client.post("/search", json={"queries": [QUERY], "k": 10}).json()["results"][0]
    assert len(hits) == 6 and all(set(h["metadata"]) == {"file", "page"} for h in hits)
    only = client.post("/search", json={"queries": [QUERY], "k": 10, "filter": {"file": "scans/b.jpg"}}).json()
    assert [(h["id"], h["metadata"]) for h in only["results"][0]] == [("scans/b.jpg", {"file": "scans/b.jpg",
                                                                                       "page": 1})]
    listed = client.get("/documents", params={"filter": '{"file": "reports/annual.pdf"}'}).json()["documents"]
    assert [d["id"] for d in listed] == [f"reports/annual.pdf#p{i}" for i in (1, 2, 3)]


def test_explain_answers_the_heatmaps_as_numbers(pages_service):
    client, collection = pages_service
    for doc_id in ("scans/b.jpg", "reports/annual.pdf#p1"):
        answer = client.post("/explain", json={"query": QUERY, "id": doc_id})
        assert answer.status_code == 200, answer.text
        e, ours = answer.json(), collection.explain(QUERY, doc_id)
        page = e["page"]
        assert (page["rows"], page["cols"]) == ours["page"]["heatmap"].shape
        assert np.array(page["heatmaps"]).shape == (len(e["query_tokens"]), page["rows"], page["cols"])
        heatmaps = np.array([[[np.nan if v is None else v for v in row] for row in m] for m in page["heatmaps"]])
        np.testing.assert_allclose(heatmaps, ours["page"]["heatmaps"], atol=1e-5)
        np.testing.assert_allclose(np.array(page["heatmap"], dtype=float), heatmaps.sum(axis=0), atol=1e-4)
        assert e["score"] == pytest.approx(ours["score"]) and e["text"] == collection.get(doc_id).text
        assert e["alignment"][0]["document_token"] == ours["document_tokens"][e["alignment"][0]["document_index"]]


def test_page_images_are_served(pages_service):
    client, collection = pages_service
    answer = client.get(image_path("reports/annual.pdf#p2"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(answer.content)).size == (300, 200)
    assert answer.content == collection.page_image("reports/annual.pdf#p2").data
    again = client.get(image_path("reports/annual.pdf#p2"), headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(str(client.base_url) + image_path("scans/a.png")).status_code == 401  # the key is needed
    missing = client.get(image_path("nope.png"))
    assert missing.status_code == 404 and "nope.png" in missing.json()["detail"]
    schema = client.get("/openapi.json").json()["paths"]["/documents/{doc_id}/image"]["get"]
    assert set(schema["responses"]["200"]["content"]) == {"image/webp"}


def test_text_writes_are_refused_and_removal_works(pages_service):
    client, _ = pages_service
    added = client.post("/documents", json={"documents": [{"id": "t", "text": "a text"}]})
    assert added.status_code == 422 and "page collection" in added.json()["detail"]
    assert client.put("/documents/t", json={"text": "a text"}).status_code == 422
    assert client.delete("/documents/" + quote("scans/c.webp", safe="")).json()["documents"] == 5
    assert client.get(image_path("scans/c.webp")).status_code == 404
    assert client.post("/explain", json={"query": QUERY, "id": "scans/c.webp"}).status_code == 404


def png_base64(size, colour) -> str:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, colour)
    image.paste((255, 255, 255), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))  # some structure
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_pages_are_added_and_replaced_over_http(pages_service):
    client, collection = pages_service
    first, second = png_base64((240, 160), (20, 90, 200)), png_base64((160, 240), (200, 40, 40))
    added = client.post("/documents", json={"documents": [{"id": "upload/x.png", "image": first, "text": "revenue",
                                                           "metadata": {"file": "upload/x.png"}}]})
    assert added.status_code == 201, added.text
    collection.add(pages=[Image.open(io.BytesIO(base64.b64decode(first)))], ids=["python/x.png"])
    hits = client.post("/search", json={"queries": [QUERY], "k": 20}).json()["results"][0]
    scores = {h["id"]: h["score"] for h in hits}
    assert scores["upload/x.png"] == pytest.approx(scores["python/x.png"], abs=1e-5)  # the same vectors
    only = client.post("/search", json={"queries": [QUERY], "filter": {"file": "upload/x.png"}}).json()
    assert [h["id"] for h in only["results"][0]] == ["upload/x.png"]
    assert Image.open(io.BytesIO(client.get(image_path("upload/x.png")).content)).size == (240, 160)
    replaced = client.put("/documents/" + quote("upload/x.png", safe=""), json={"image": second,
                                                                              "metadata": {"file": "v2"}})
    assert replaced.status_code == 200, replaced.text
    assert Image.open(io.BytesIO(client.get(image_path("upload/x.png")).content)).size == (160, 240)
    assert client.get("/documents/" + quote("upload/x.png", safe="")).json()["metadata"] == {"file": "v2"}
    for doc_id in ("upload/x.png", "python/x.png"):
        assert client.delete("/documents/" + quote(doc_id, safe="")).status_code == 200


@pytest.mark.parametrize("document, says", [({"id": "b", "image": "not base64!"}, "document 0 image is not base64"),
                                            ({"id": "b", "image": "aGVsbG8="}, "document 0 image is not an image"),
                                            ({"id": "b", "text": "only text"}, "document 0 has no image")])
def test_bad_page_uploads_are_named_and_change_nothing(pages_service, document, says):
    client, collection = pages_service
    before = len(collection)
    answer = client.post("/documents", json={"documents": [document]})
    assert answer.status_code == 422 and says in answer.json()["detail"]
    assert len(collection) == before


def test_a_text_collection_refuses_images(tiny_model, tmp_path):
    live = LiveRetriever(build_index(tmp_path / "text", tiny_model, n=3), tiny_model)
    with serve_in_thread(create_app(live)) as url:
        answer = httpx.post(url + "/documents", json={"documents": [{"text": "x", "image": png_base64((8, 8), 0)}]})
        assert answer.status_code == 422 and "holds texts" in answer.json()["detail"]
        answer = httpx.put(url + "/documents/a", json={"metadata": {"k": 1}})
        assert answer.status_code == 422 and "the document has no text" in answer.json()["detail"]
    live.close()


def test_a_text_collection_has_no_page_images(tiny_model, tmp_path):
    live = LiveRetriever(build_index(tmp_path / "text", tiny_model, n=5), tiny_model)
    live.collection.add(["A document whose id ends in /image."], ids=["figures/image"])
    with serve_in_thread(create_app(live)) as url:
        doc_id = live.collection.documents(limit=1)[0].id
        missing = httpx.get(url + image_path(doc_id))
        assert missing.status_code == 404 and "text collection" in missing.json()["detail"]
        assert httpx.get(url + "/documents/figures/image").json()["id"] == "figures/image"  # still readable
        assert httpx.get(url + "/health").json()["modality"] == "text"
        e = httpx.post(url + "/explain", json={"query": "wing", "id": doc_id}).json()
        assert e["page"] is None
    live.close()
