"""A grouped device-offline incident (a building's power cut, server/domain/storms.py) is the
building's: a supervisor reading any member household's incidents or any member's grid's
incident log finds it, a worker of any member household sees it, and it is listed under the
building with its member households, not as the first member household's own."""

from __future__ import annotations

import re

import httpx

from ground.timeutil import utcnow
from server.config import ServerSettings, StormSettings
from server.db.base import Database
from server.domain.incident_opening import IncidentKind
from server.domain.notification_outbox import NotificationContext
from server.domain.storms import group_offline
from tests.web.helpers import Seed, login, open_incident


async def _power_cut(db: Database, settings: ServerSettings, seeded: Seed) -> int:
    """Both seeded households are in 3号楼 (east grid and west grid); both devices go
    offline together; the grouped incident's id."""
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET building = '3号楼'")
    for grid in ("east", "west"):
        await open_incident(db, seeded.households[grid], f"door-{grid}",
                            IncidentKind.DEVICE_OFFLINE)
    result = await group_offline(db, StormSettings(threshold=2), NotificationContext.of(settings),
                                 None, utcnow())
    [group] = result.opened
    return group


def _listed(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<tr class="state-[a-z]+[^"]*" data-id="(\d+)"', html)}


async def test_a_grouped_offline_incident_is_found_from_every_member(
    client: httpx.AsyncClient, db: Database, settings: ServerSettings, seeded: Seed
) -> None:
    group = await _power_cut(db, settings, seeded)
    await login(client, "super")
    for grid in ("east", "west"):
        by_household = await client.get(f"/incidents?household={seeded.households[grid]}")
        assert group in _listed(by_household.text), grid
        by_grid = await client.get(f"/incidents?grid={seeded.grids[grid]}")
        assert group in _listed(by_grid.text), grid
    # Listed as the building's, with its households, not as "east family"'s alone.
    listed = (await client.get(f"/incidents?household={seeded.households['west']}")).text
    row = listed[listed.index(f'data-id="{group}"'):]
    row = row[:row.index("</tr>")]
    assert "3号楼（2 户）" in row
    assert "east family、west family" in row
    assert "east road 1" not in row
    # Its page links every member household.
    page = (await client.get(f"/incidents/{group}")).text
    for grid in ("east", "west"):
        assert f'href="/households/{seeded.households[grid]}"' in page
    # A member household's open incidents count its own outage once, not the group as well.
    homes = (await client.get("/households")).text
    for grid in ("east", "west"):
        assert f'href="/incidents?household={seeded.households[grid]}">2</a>' in homes, grid
    client.cookies.clear()

    # The west worker, whose household is a member but not the first, sees and can act on it.
    await login(client, "west")
    assert group in _listed((await client.get("/incidents")).text)
    west_page = await client.get(f"/incidents/{group}")
    assert west_page.status_code == 200
    assert f'href="/households/{seeded.households["west"]}"' in west_page.text
    assert f'href="/households/{seeded.households["east"]}"' not in west_page.text  # not theirs
    api = (await client.get("/api/incidents", params={"kind": "offline_group"})).json()
    assert [i["id"] for i in api] == [group]
    assert api[0]["group_households"] == [seeded.households["west"]]
