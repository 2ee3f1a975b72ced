"""The web page over a page collection in a real headless browser (Debian's chromium driven by playwright):
hits show their page as a thumbnail; explaining a hit draws the heatmap over the page (the summed map, and
each query token's when its row is hovered or picked), its strongest cell where the service says."""

from urllib.parse import quote

import httpx
import numpy as np
import pytest

from test_browser import browser, browser_tools, opened  # noqa: F401  (browser, browser_tools: fixtures)
from test_pages_server import served_pages
from test_server import AUTH, KEY

pytest.importorskip("pypdfium2")
QUERY = "revenue of the year"
ALPHA = """(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)
                 .filter((_, i) => i % 4 === 3)"""


@pytest.fixture(scope="module")
def page_url(page_model, page_checkpoint, tmp_path_factory):
    with served_pages(page_model, page_checkpoint, tmp_path_factory.mktemp("page-browser")) as (url, _):
        yield url


def test_thumbnails_and_heatmap_of_an_explained_page(browser, page_url):  # noqa: F811
    with opened(browser, page_url) as page:
        page.wait_for_function("document.getElementById('status').textContent.includes('6 documents')")
        page.fill("#api-key", KEY)
        page.fill("#query", QUERY)
        page.press("#query", "Enter")
        page.wait_for_function("document.querySelectorAll('.hit.explained').length === 6")
        page.wait_for_function("[...document.querySelectorAll('.hit img.thumb')].every(i => i.naturalWidth > 0)"
                               " && document.querySelectorAll('.hit img.thumb').length === 6")
        first = page.locator(".hit").nth(0)
        doc_id = first.locator(".hit-id").text_content()
        meta = httpx.get(f"{page_url}/documents/{quote(doc_id, safe='')}", headers=AUTH).json()["metadata"]
        assert first.locator(".title").text_content().startswith(meta["file"])
        size = first.locator("img.thumb").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert size[0] > 0 and size[1] > 0

        first.locator("button.explain").click()
        page.wait_for_selector("#page-view:not([hidden])")
        page.wait_for_function("document.querySelector('#page-view img').naturalWidth > 0")
        e = httpx.post(f"{page_url}/explain", json={"query": QUERY, "id": doc_id}, headers=AUTH).json()
        canvas = page.locator("#heatmap")
        assert canvas.evaluate("c => [c.width, c.height]") == [e["page"]["cols"], e["page"]["rows"]]
        assert canvas.get_attribute("data-token") == "sum"
        summed = np.array(e["page"]["heatmap"], dtype=float)
        alpha = np.array(canvas.evaluate(ALPHA)).reshape(summed.shape)
        assert alpha.flat[np.nanargmax(summed)] == 200 and alpha.flat[np.nanargmin(summed)] == 0
        frame = page.locator("#page-view .page-frame").bounding_box()
        drawn = canvas.bounding_box()
        assert abs(drawn["width"] - frame["width"]) < 3 and abs(drawn["height"] - frame["height"]) < 3

        rows = page.locator("#alignment tbody tr")
        rows.nth(2).hover()  # a query token's own map
        assert canvas.get_attribute("data-token") == "2"
        token = np.array(e["page"]["heatmaps"][2], dtype=float)
        alpha = np.array(canvas.evaluate(ALPHA)).reshape(token.shape)
        assert alpha.flat[np.nanargmax(token)] == 200
        page.mouse.move(0, 0)
        page.select_option("#heat-token", "4")
        assert canvas.get_attribute("data-token") == "4"
        assert page.is_hidden("#error")
