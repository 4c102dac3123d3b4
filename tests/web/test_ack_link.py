"""One-tap acknowledge links: signed, single-use, expiring, audited; clear pages when refused."""

from __future__ import annotations

import re

import httpx
import pytest

from server.db.base import Database
from server.domain.ack_links import AckLinkError, ack_secret, check_token, new_ack_link
from server.domain.notification_outbox import NotificationContext, Purpose, queue_notifications
from tests.web.helpers import Seed


async def _link(db: Database, seeded: Seed, grid: str = "east") -> str:
    """The path of the ack link in a real alert queued for the grid's worker."""
    async with db.transaction() as tx:
        await tx.execute("UPDATE workers SET apprise_urls = ? WHERE id = ?",
                         ('["json://127.0.0.1:9/x"]', seeded.workers[grid]))
        await queue_notifications(tx, incident_id=seeded.incidents[grid],
                                  recipients=[seeded.workers[grid]], purpose=Purpose.ALERT,
                                  context=NotificationContext("https://dw.example", "UTC"))
    body = (await db.fetch_one("SELECT body FROM notifications ORDER BY id DESC LIMIT 1"))
    assert body is not None
    match = re.search(r"https://dw\.example(/a/\S+)", body["body"])
    assert match, body["body"]
    return match.group(1)


async def _state(db: Database, incident_id: int) -> tuple[str, str | None]:
    row = await db.fetch_one("SELECT state, acknowledged_by FROM incidents WHERE id = ?",
                             (incident_id,))
    assert row is not None
    return row["state"], row["acknowledged_by"]


async def test_link_acknowledges_as_that_worker_once(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    path = await _link(db, seeded)
    page = await client.get(path)  # no session, no log-in
    assert page.status_code == 200
    assert 'data-state="ask"' in page.text
    assert "east family" in page.text
    assert await _state(db, seeded.incidents["east"]) == ("open", None)  # GET changes nothing
    done = await client.post(path)
    assert done.status_code == 200
    assert 'data-state="acknowledged"' in done.text
    state, by = await _state(db, seeded.incidents["east"])
    assert state == "acknowledged"
    assert by is not None
    assert f"worker:{seeded.workers['east']}" in by
    assert "worker-east" in by
    audit = await db.fetch_all("SELECT actor, action, detail FROM audit_log "
                               "WHERE action LIKE 'incident.ack%' ORDER BY id")
    assert [(a["action"], "one-tap link" in (a["detail"] or "")) for a in audit] == [
        ("incident.ack", True)]
    # Replayed: refused, clearly, and audited; the incident is untouched.
    for again in (await client.post(path), await client.get(path)):
        assert again.status_code == 410
        assert "已经使用过" in again.text
    refused = await db.fetch_all("SELECT detail FROM audit_log "
                                 "WHERE action = 'incident.ack_link_refused'")
    assert [r["detail"].split()[0] for r in refused] == ["used"]


async def test_forged_and_altered_links_are_refused(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    path = await _link(db, seeded)
    token = path.rsplit("/", 1)[1]
    # Same payload shape, other worker's incident: the signature no longer matches.
    altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (f"/a/{altered}", "/a/not-a-token", f"/a/{token[:20]}"):
        for response in (await client.get(bad), await client.post(bad)):
            assert response.status_code == 400
            assert "无效" in response.text or "not valid" in response.text
    assert await _state(db, seeded.incidents["east"]) == ("open", None)


async def test_expired_links_are_refused(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    path = await _link(db, seeded)
    async with db.transaction() as tx:
        await tx.execute("UPDATE ack_links SET expires_at = '2000-01-01T00:00:00.000000Z'")
    for response in (await client.get(path), await client.post(path)):
        assert response.status_code == 410
        assert "已过期" in response.text
    assert await _state(db, seeded.incidents["east"]) == ("open", None)


async def test_signature_age_is_checked_too(db: Database, seeded: Seed,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    async with db.transaction() as tx:
        secret = await ack_secret(tx)
        token = await new_ack_link(tx, incident_id=seeded.incidents["east"],
                                   worker_id=seeded.workers["east"], lifetime_s=60,
                                   secret=secret)
    assert check_token(token, secret=secret, lifetime_s=60).worker_id == seeded.workers["east"]
    import itsdangerous.timed

    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 3600)
    with pytest.raises(AckLinkError, match="expired"):
        check_token(token, secret=secret, lifetime_s=60)
    with pytest.raises(AckLinkError, match="invalid"):
        check_token(token, secret="another-secret", lifetime_s=1e9)


async def test_an_incident_acknowledged_meanwhile_is_said_so(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    path = await _link(db, seeded)
    async with db.transaction() as tx:
        await tx.execute("UPDATE incidents SET state = 'acknowledged', acknowledged_by = 'super' "
                         "WHERE id = ?", (seeded.incidents["east"],))
    response = await client.post(path)
    assert response.status_code == 200
    assert 'data-state="already"' in response.text
    assert "super" in response.text
