"""The dashboard page in a real headless browser: it loads, shows the stack's numbers, and they change.

Needs Debian's ``chromium`` (driven by Playwright for Python through ``executable_path``;
``playwright install`` is never run). Without it the test is skipped and says why.
"""

from __future__ import annotations

import shutil

import pytest

from services.dashboard import service
from shared.codec import encode
from shared.topics import ALERTS, LABELS, MODEL_VERSIONS, SCORES
from shared import events as ev
from tests.integration.test_dashboard import T0, alert, dashboard_settings, model, scores_of, url, wait_summary
from tests.kafka_helpers import produce

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright for Python is not installed")


@pytest.fixture
async def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (Debian) to run the page in a browser")
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def text_becomes(page, selector: str, expected: str, timeout_s: float = 60.0) -> None:
    """Wait until the element's text is ``expected``, polled by the browser with a deadline."""
    try:
        await page.wait_for_function(
            "([sel, want]) => document.querySelector(sel)?.textContent === want",
            arg=[selector, expected], timeout=timeout_s * 1000)
    except playwright_api.TimeoutError:
        shown = await page.locator(selector).inner_text()
        status = await page.locator("#status").inner_text()
        raise AssertionError(f"{selector} shows {shown!r}, not {expected!r}, after {timeout_s}s ({status})") from None


async def test_page_shows_live_numbers_and_they_change(settings, start_service, browser, tmp_path):
    s = dashboard_settings(settings)
    start_service(service.run, s)
    await produce(s, SCORES, scores_of(0, 20, 20))
    await produce(s, ALERTS, [(b"c1", encode(alert(i))) for i in range(2)])
    await produce(s, MODEL_VERSIONS, [(b"v1", encode(model("v1", None, "initial")))])
    await wait_summary(s, lambda x: x["totals"]["scores"] == 20 and x["totals"]["alerts"] == 2)

    page = await browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url(s))
    await text_becomes(page, "#scores-total", "20")
    await text_becomes(page, "#alerts-total", "2")
    assert await page.locator("#alert-feed tbody tr").count() == 2
    assert "amount far above" in await page.locator("#alert-feed").inner_text()
    assert "v1" in await page.locator("#model-feed").inner_text()
    assert await page.locator("#throughput polyline").count() == 2

    # More traffic, then a label for one of its transactions: the open page updates by itself.
    await produce(s, SCORES, scores_of(20, 20, 40))
    await produce(s, MODEL_VERSIONS, [(b"v2", encode(model("v2", "v1", "retrain")))])
    await text_becomes(page, "#scores-total", "40")
    await produce(s, LABELS, [(b"c2", encode(ev.Label(tx_id="t38", card_id="c2", is_fraud=True, labelled_at=T0)))])
    await text_becomes(page, "#labels-total", "1")
    await text_becomes(page, "#recall", "100.0%")
    assert "v2" in await page.locator("#model-feed tbody tr").first.inner_text()
    assert "served by http://127.0.0.1" in await page.locator("#status").inner_text()
    await page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert errors == []
