"""An incident that happened during a presence check-in says so on its page (the breach of
somebody who went out after the chime is that check-in's incident too: checkin_watch)."""

from __future__ import annotations

from uuid import uuid4

import httpx

from ground.timeutil import now_ts
from server.db.base import Database
from server.domain.incident_opening import IncidentKind
from tests.web.helpers import Seed, login, open_incident


async def _checkin_of(db: Database, household: int, device: str, incident: int | None,
                      context: str | None = None, outcome: str = "left") -> None:
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO checkins (household_id, device_id, command_id, requested_by, "
            "requested_at, window_s, deadline_at, published_at, outcome, outcome_at, "
            "incident_id, context) VALUES (?, ?, ?, 'east', ?, 60, ?, ?, ?, ?, ?, ?)",
            (household, device, str(uuid4()), now_ts(), now_ts(), now_ts(), outcome, now_ts(),
             incident, context))


async def test_the_breach_page_says_it_was_during_a_check_in(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    breach = seeded.incidents["east"]
    await login(client, "east")
    before = await client.get(f"/incidents/{breach}")
    assert before.status_code == 200
    assert 'id="checkin-context"' not in before.text
    await _checkin_of(db, seeded.households["east"], "door-east", breach)
    during = await client.get(f"/incidents/{breach}")
    assert 'id="checkin-context"' in during.text
    assert "此事发生在在家签到期间" in during.text
    # A missed check-in's own incident is about the check-in already: no such note.
    missed = await open_incident(db, seeded.households["east"], "door-east",
                                 IncidentKind.MISSED_CHECKIN)
    await _checkin_of(db, seeded.households["east"], "door-east", missed)
    assert 'id="checkin-context"' not in (await client.get(f"/incidents/{missed}")).text
    client.cookies.clear()
    await login(client, "admin")  # reads English
    english = await client.get(f"/incidents/{breach}")
    assert "This happened during a presence check-in" in english.text


async def test_a_withdrawn_or_allowed_exit_says_the_check_in_is_not_missed(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    """The breach that took a check-in was withdrawn (the person came straight back in): its
    page says the check-in no longer counts as missed, and so does the household's list;
    an exit on a permitted leave, or nobody coming while the household was on one, is
    listed with why it is no missed check-in."""
    breach = seeded.incidents["east"]
    home = seeded.households["east"]
    await _checkin_of(db, home, "door-east", breach, "reentry")
    await _checkin_of(db, home, "door-east", None, "leave")
    await _checkin_of(db, home, "door-east", None, "leave", outcome="absent")
    await login(client, "east")
    page = (await client.get(f"/incidents/{breach}")).text
    assert "设备随后判定无人离开，该次签到不再记为未通过" in page
    assert "该次签到也记为未通过" not in page
    listed = (await client.get(f"/households/{home}")).text
    assert "已撤回：出门后随即返回" in listed
    assert "准假外出期间，不计为未通过" in listed
    assert ('无人到门口 · <span class="checkin-context">准假外出期间，不计为未通过</span>'
            in listed)
