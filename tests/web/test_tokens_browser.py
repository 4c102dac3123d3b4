"""API tokens for the health office (issue 19, item 6), end to end on the real server.

An admin creates a grid-limited token in Chromium (shown once); a program
reads the day's export, follow-ups and incidents with it over HTTP from the
server started by ``serve`` (on a private Mosquitto): the documented schema,
only that grid, fevers flagged, releases listed. A missing scope is 403, the
budget per minute gives 429 with Retry-After, revoking in the browser makes
it 401 at once, every use is in the audit log, and the OpenAPI document
describes the endpoints and the bearer scheme. Only an admin manages tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from server.domain.followups import FeverRule, FollowUpIn, record_followup
from server.domain.households import end_quarantine_early
from server.domain.releases import ReleaseOutcome
from tests.conftest import Mosquitto
from tests.e2e.helpers import count
from tests.web.helpers import PASSWORD, Live, live_server, logged_in_page
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto, a token budget of 6 requests a minute."""
    # Plain HTTP on loopback: the session cookie must not be Secure-only for httpx.
    async with live_server(tmp_path, mosquitto, http={"cookie_secure": False},
                           followups={"remind_at": None},
                           share={"requests_per_minute": 6}) as running:
        yield running


async def test_admin_token_reads_a_grids_day_and_is_revoked(
    live: Live, browser: object,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = live
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    for grid in ("east", "west"):
        await record_followup(db, FollowUpIn(
            household_id=contents.households[grid], day=today,
            temperatures={"household": 38.0 if grid == "east" else 36.5}), actor=grid,
            rule=FeverRule())
    await end_quarantine_early(db, contents.households["west"], actor="super",
                               reason="tested negative", outcome=ReleaseOutcome.TESTED_NEGATIVE)

    page = await logged_in_page(browser, base, "admin", viewport={"width": 1280, "height": 900})
    await page.click("a[href='/tokens']")
    form = page.locator("#token-form")
    await form.locator("input[name=name]").fill("District CDC")
    await form.locator("input[value='read:export']").check()
    await form.locator("input[value='read:followups']").check()
    await form.locator("select[name=grid_id]").select_option(label="east-grid")
    await form.locator("button").click()
    text = (await page.locator("[data-testid=token-text]").text_content() or "").strip()
    assert text.startswith("dwt_")
    await page.screenshot(path=str(ARTIFACTS / "token-created.png"), full_page=True)
    await page.goto(f"{base}/tokens")
    await expect(page.locator("[data-testid=token-text]")).to_have_count(0)  # shown once
    await expect(page.locator("#tokens tbody tr").first).to_contain_text("District CDC")

    auth = {"Authorization": f"Bearer {text}"}
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        export = await http.get(f"/api/share/day/{today.isoformat()}", headers=auth)
        assert export.status_code == 200, export.text
        day = export.json()
        assert (day["schema_version"], day["day"], day["grid"]) == (1, today.isoformat(),
                                                                    "east-grid")
        assert [h["name"] for h in day["households"]] == ["east family"]  # the west: not here
        assert [i["kind"] for i in day["incidents"]] == ["breach", "fever"]
        (followup,) = day["followups"]
        assert followup["readings"] == [{"member": "household", "temperature_c": 38.0,
                                         "fever": True, "symptoms": ""}]
        assert day["releases"] == []  # the west's release is another grid's
        followups = await http.get("/api/share/followups", headers=auth)
        assert [f["household_id"] for f in followups.json()] == [contents.households["east"]]
        refused = await http.get("/api/share/incidents", headers=auth)
        assert refused.status_code == 403  # no read:incidents scope
        for _ in range(4):  # 2 used, 1 refused (not counted): the 6th counted one is the last
            last = await http.get("/api/share/followups", headers=auth)
        assert last.status_code == 200
        limited = await http.get("/api/share/followups", headers=auth)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        anonymous = await http.get("/api/share/followups")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"

        # The OpenAPI document (behind a login) describes the endpoints and the scheme.
        login = await http.post("/api/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200
        schema = (await http.get("/api/openapi.json")).json()
        assert "/api/share/day/{day}" in schema["paths"]
        assert "ApiToken" in schema["components"]["securitySchemes"]
        assert "DayExport" in schema["components"]["schemas"]

    await page.click("[data-testid=revoke]")
    await expect(page.locator("[data-testid=token-state]").first).to_have_text("Revoked")
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        gone = await http.get(f"/api/share/day/{today.isoformat()}", headers=auth)
        assert gone.status_code == 401
    assert await count(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'api_token.use' "
                           "AND actor = 'token:District CDC'") == 6
    assert await count(db, "SELECT COUNT(*) FROM audit_log WHERE action IN "
                           "('api_token.create', 'api_token.revoke') AND actor = 'admin'") == 2

    # Only an admin manages tokens.
    page2 = await logged_in_page(browser, base, "super")
    response = await page2.goto(f"{base}/tokens")
    assert response is not None
    assert response.status == 403
    await page.context.close()
    await page2.context.close()
