"""Grid reports in the browser (issue 19 item 5): a supervisor opens the printable daily
report of a grid, switches language, and downloads the PDF, whose text has the same figures."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from server.domain.followups import FeverRule, FollowUpIn, record_followup
from tests.conftest import Mosquitto
from tests.web.helpers import Live, live_server, logged_in_page
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto (reports' own job off: the page makes them on demand)."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None},
                           reports={"daily_at": None}) as running:
        yield running


async def test_printable_report_and_its_pdf(
    live: Live, browser: object,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    server, contents, base, db = live
    zone = server.settings.notify.timezone
    today = datetime.now(ZoneInfo(zone)).date()
    await record_followup(db, FollowUpIn(household_id=contents.households["east"], day=today,
                                         temperatures={"household": 38.4}),
                          actor="east", rule=FeverRule(threshold_c=37.3))

    page = await logged_in_page(browser, base, "super", viewport={"width": 1280, "height": 900},
                                accept_downloads=True)
    await page.click("[data-testid=nav-reports]")
    await page.wait_for_url("**/reports")
    east = contents.grids["east"]
    await page.click(f"tr[data-grid='{east}'] [data-testid=report-daily]")
    await page.wait_for_url(f"**/reports/grid/{east}?day=*")
    await expect(page.locator("[data-testid=report-title]")).to_contain_text("网格日报：east-grid")
    summary = page.locator("#report-summary")
    await expect(summary).to_contain_text("发热 1 人次")
    await expect(summary).to_contain_text("随访 1/1 户次")
    await expect(page.locator("#report-fevers")).to_contain_text("38.4 °C")
    await expect(page.locator("#report-fevers")).to_contain_text("全户")
    await page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    href = await page.locator("[data-testid=report-pdf]").get_attribute("href")
    assert href is not None
    response = await page.request.get(f"{base}{href}")
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(await response.body())).pages)
    assert "网格日报：east-grid" in text
    assert "发热 1 人次" in text
    assert "38.4" in text

    await page.click("[data-testid=lang-en]")
    await expect(page.locator("[data-testid=report-title]")).to_contain_text(
        "Daily grid report: east-grid")
    await expect(summary).to_contain_text("Fevers: 1 readings")

    # A grid worker may not read a grid report.
    page2 = await logged_in_page(browser, base, "east")
    refused = await page2.request.get(f"{base}/reports/grid/{east}")
    assert refused.status == 403
