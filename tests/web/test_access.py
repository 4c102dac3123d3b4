"""Every route's login, role and grid checks, and CSRF rejection, through the real app."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi.routing import APIRoute

from ground.timeutil import utcnow
from server.admin import register_device
from server.db.base import Database
from server.web import actions
from tests.web.helpers import Seed, csrf_from, login

ADMIN, SUPER, WORKER, INSTALLER = "admin", "super", "east", "fitter"
EVERYONE = {ADMIN, SUPER, WORKER, INSTALLER}
CASEWORK = {ADMIN, SUPER, WORKER}
OVERSEERS = {ADMIN, SUPER}
DEVICE_STAFF = {ADMIN, SUPER, INSTALLER}

# (method, path, who may, body): {inc} {hh} {leave} are the east grid's incident, household
# and leave, so the east worker may reach them. Every route of the app must be listed here.
ROUTES: list[tuple[str, str, set[str], dict[str, object] | None]] = [
    ("GET", "/", EVERYONE, None),
    ("GET", "/incidents", CASEWORK, None),
    ("GET", "/incidents.csv", CASEWORK, None),
    ("GET", "/incidents/{inc}", CASEWORK, None),
    ("GET", "/incidents/{inc}/row", CASEWORK, None),
    ("GET", "/incidents/{inc}/snapshots/none.jpg", CASEWORK, None),
    ("GET", "/households", CASEWORK, None),
    ("GET", "/households/{hh}", CASEWORK, None),
    ("GET", "/devices", DEVICE_STAFF, None),
    ("GET", "/audit", OVERSEERS, None),
    ("GET", "/charts", OVERSEERS, None),
    ("GET", "/users", {ADMIN}, None),
    ("POST", "/incidents/{inc}/ack", CASEWORK, {}),
    ("POST", "/incidents/{inc}/resolve", CASEWORK, {"outcome": "false_alarm", "note": "x"}),
    ("POST", "/households/{hh}/leaves", CASEWORK,
     {"starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T12:00", "reason": "hospital"}),
    ("POST", "/leaves/{leave}/end", CASEWORK, {}),
    ("POST", "/households/{hh}/followups", CASEWORK, {"member": "household", "temp": "36.6",
                                                       "symptom": "", "symptoms": ""}),
    ("GET", "/followups", CASEWORK, None),
    ("GET", "/followups.csv", CASEWORK, None),
    ("POST", "/households/{hh}/visits", CASEWORK,
     {"starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T12:00", "visitor": "nurse",
      "purpose": "swab"}),
    ("POST", "/visits/{visit}/cancel", CASEWORK, {}),
    ("POST", "/households", OVERSEERS, {"name": "new-{who}", "address": "road 2",
                                        "members": "a\nb"}),
    ("POST", "/households/{hh}/edit", OVERSEERS, {"name": "east family", "address": "east road 1"}),
    ("POST", "/households/{hh}/devices", OVERSEERS, {"device_id": "door-east"}),
    ("POST", "/devices", DEVICE_STAFF, {"device_id": "door-new-{who}"}),
    ("POST", "/households/{hh}/release", OVERSEERS, {"outcome": "other", "note": "x"}),
    ("GET", "/tokens", {ADMIN}, None),
    ("POST", "/tokens", {ADMIN}, {"name": "health-{who}", "scope": "read:export"}),
    ("POST", "/users", {ADMIN},
     {"username": "new-{who}", "password": "long enough pw", "role": "installer"}),
    ("GET", "/api/session", EVERYONE, None),
    ("GET", "/api/openapi.json", EVERYONE, None),
    ("GET", "/api/incidents", CASEWORK, None),
    ("GET", "/api/incidents/export.csv", CASEWORK, None),
    ("GET", "/api/incidents/{inc}", CASEWORK, None),
    ("GET", "/api/households", CASEWORK, None),
    ("GET", "/api/households/{hh}", CASEWORK, None),
    ("GET", "/api/workers", OVERSEERS, None),
    ("GET", "/api/devices", DEVICE_STAFF, None),
    ("GET", "/api/audit", OVERSEERS, None),
    ("GET", "/api/users", {ADMIN}, None),
    ("POST", "/api/incidents/{inc}/ack", CASEWORK, {}),
    ("POST", "/api/incidents/{inc}/resolve", CASEWORK, {"outcome": "authorised", "note": ""}),
    ("POST", "/api/households", OVERSEERS, {"name": "n", "address": "a"}),
    ("POST", "/api/households/{hh}/leaves", CASEWORK,
     {"starts_at": "2030-01-01T08:00:00+08:00", "ends_at": "2030-01-01T10:00:00+08:00",
      "reason": "test"}),
    ("POST", "/api/leaves/{leave}/end", CASEWORK, {}),
    ("POST", "/api/households/{hh}/followups", CASEWORK, {"temperatures": {"household": 36.5}}),
    ("POST", "/api/workers", OVERSEERS, {"name": "w"}),
    ("POST", "/api/devices", DEVICE_STAFF, {"device_id": "door-new"}),  # provisioned below
    ("POST", "/api/devices/door-east/replace", DEVICE_STAFF,
     {"new_device_id": "door-new", "reason": "broken"}),
    ("GET", "/api/grids", OVERSEERS, None),
    ("POST", "/api/grids", OVERSEERS, {"name": "grid-{who}"}),
    ("POST", "/api/households/{hh}/end-quarantine", OVERSEERS, {"reason": "negative test"}),
    ("POST", "/api/users", {ADMIN},
     {"username": "api-{who}", "password": "long enough pw", "role": "installer"}),
    ("GET", "/account/password", EVERYONE, None),
    ("POST", "/api/users/{user}/disable", {ADMIN}, {}),
    ("POST", "/api/users/{user}/enable", {ADMIN}, {}),
    ("POST", "/api/users/{user}/password", {ADMIN}, {"password": "yet another long pw"}),
    ("POST", "/users/{user}/disable", {ADMIN}, {}),
    ("POST", "/users/{user}/enable", {ADMIN}, {}),
    ("POST", "/users/{user}/password", {ADMIN}, {"password": "another long pw"}),
    ("POST", "/users/{user}/delete", {ADMIN}, {"confirm": "yes"}),
    ("DELETE", "/api/users/{other}", {ADMIN}, None),
    # Last: they end the user's other sessions (this client gets a fresh one).
    ("POST", "/api/session/password", EVERYONE,
     {"current": "correct horse battery", "password": "api pw of {who}"}),
    ("POST", "/account/password", EVERYONE,
     {"current": "api pw of {who}", "password": "new pw of {who}",
      "repeat": "new pw of {who}"}),
]
# Routes outside the matrix on purpose: public ones and the endless live stream
# (its role check is tested separately).
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"), ("GET", "/metrics"),
          ("POST", "/language"), ("POST", "/logout"), ("POST", "/api/login"),
          ("POST", "/api/logout"), ("GET", "/live/incidents"),
          # API-token endpoints: no session at all (tests/web/test_tokens_browser.py).
          ("GET", "/api/share/incidents"), ("GET", "/api/share/followups"),
          ("GET", "/api/share/day/{day}")}


async def _leave(db: Database, household_id: int) -> int:
    start = utcnow() + timedelta(days=1)
    return await actions.grant_leave(db, household_id, start, start + timedelta(hours=2),
                                     "setup", "test")


async def _visit(db: Database, household_id: int) -> int:
    start = utcnow() + timedelta(days=1)
    return await actions.register_visit(db, household_id, start, start + timedelta(hours=2),
                                        "nurse", "", "swab", None, "test")


async def _victim(db: Database, username: str = "west") -> int:
    """A user the admin's user-management routes act on (another grid's worker)."""
    row = await db.fetch_one("SELECT id FROM users WHERE username = ?", (username,))
    assert row is not None
    return int(row["id"])


def _fill(path: str, ids: dict[str, object]) -> str:
    return path.format(**ids)


def _send(client: httpx.AsyncClient, method: str, path: str, body: dict[str, object] | None,
          csrf: str | None, who: str) -> httpx.Request:
    headers = {}
    if path.startswith("/api/") and (body is not None or method == "DELETE"):
        if csrf:
            headers["X-CSRF-Token"] = csrf
        return client.build_request(method, path, json=_who(body, who) if body else None,
                                    headers=headers)
    data = {k: str(v) for k, v in _who(body or {}, who).items()}
    if method == "POST" and csrf:
        data["csrf_token"] = csrf
    return client.build_request(method, path, data=data if method == "POST" else None)


def _who(body: dict[str, object], who: str) -> dict[str, object]:
    return {k: v.replace("{who}", who) if isinstance(v, str) else v for k, v in body.items()}


async def test_route_table_covers_the_app(client: httpx.AsyncClient) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    listed = {(m, p.replace("{inc}", "{incident_id}").replace("{hh}", "{household_id}")
               .replace("{leave}", "{leave_id}").replace("{visit}", "{visit_id}")
               .replace("none.jpg", "{event_id}.jpg")
               .replace("{user}", "{user_id}").replace("{other}", "{user_id}"))
              for m, p, _, _ in ROUTES} | PUBLIC
    found = {(method, route.path) for route in app.routes  # type: ignore[attr-defined]
             if isinstance(route, APIRoute) for method in route.methods}
    assert found - listed == set(), "routes without an access rule in this test"


async def test_anonymous_is_sent_to_login(client: httpx.AsyncClient, seeded: Seed,
                                          db: Database) -> None:
    ids = {"inc": seeded.incidents["east"], "hh": seeded.households["east"],
           "leave": await _leave(db, seeded.households["east"]), "user": await _victim(db),
           "visit": await _visit(db, seeded.households["east"]),
           "other": await _victim(db, "fitter")}
    csrf = csrf_from((await client.get("/login")).text)  # a valid token: test auth, not CSRF
    for method, path, _, body in ROUTES:
        url = _fill(path, ids)
        response = await client.send(_send(client, method, url, body, csrf, "anon"))
        if url.startswith("/api/"):
            assert response.status_code == 401, (method, url, response.status_code)
        else:
            assert response.status_code == 303, (method, url, response.status_code)
            assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("who", [ADMIN, SUPER, WORKER, INSTALLER])
async def test_roles(client: httpx.AsyncClient, seeded: Seed, db: Database, who: str) -> None:
    csrf = await login(client, who)
    problems = []
    victim, other = await _victim(db), await _victim(db, "fitter")
    await register_device(db, "door-new", household_id=None)  # as `device provision` does
    for method, path, allowed, body in ROUTES:
        ids = {"inc": seeded.incidents["east"], "hh": seeded.households["east"],
               "leave": await _leave(db, seeded.households["east"]), "user": victim,
               "visit": await _visit(db, seeded.households["east"]),
               "other": other}
        url = _fill(path, ids)
        response = await client.send(_send(client, method, url, body, csrf, who))
        if who in allowed:
            # Allowed, yet the domain may refuse the change itself (already acknowledged,
            # device already replaced by an earlier role's turn): never 401/403.
            ok = response.status_code < 400 or (
                response.status_code in (404, 409) and any(
                    part in url for part in ("snapshots", "ack", "resolve", "replace",
                                              "end-quarantine")))
        else:
            ok = response.status_code == 403
        if not ok:
            problems.append((method, url, response.status_code, response.text[:120]))
    assert problems == []


async def test_installer_cannot_open_the_live_feed(client: httpx.AsyncClient) -> None:
    await login(client, INSTALLER)
    assert (await client.get("/live/incidents")).status_code == 403


async def test_worker_sees_only_their_grid(client: httpx.AsyncClient, seeded: Seed,
                                           db: Database) -> None:
    csrf = await login(client, WORKER)
    other_inc, other_hh = seeded.incidents["west"], seeded.households["west"]
    other_leave = await _leave(db, other_hh)
    other_visit = await _visit(db, other_hh)
    for url in (f"/incidents/{other_inc}", f"/incidents/{other_inc}/row",
                f"/households/{other_hh}", f"/api/incidents/{other_inc}",
                f"/api/households/{other_hh}"):
        assert (await client.get(url)).status_code == 404, url
    for url, data in ((f"/incidents/{other_inc}/ack", {}),
                      (f"/incidents/{other_inc}/resolve", {"outcome": "false_alarm"}),
                      (f"/leaves/{other_leave}/end", {}),
                      (f"/households/{other_hh}/followups", {"note": "x"}),
                      (f"/households/{other_hh}/visits", {
                          "starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T09:00",
                          "visitor": "v", "purpose": "p"}),
                      (f"/visits/{other_visit}/cancel", {})):
        response = await client.post(url, data={**data, "csrf_token": csrf})
        assert response.status_code == 404, url
    response = await client.post(f"/api/incidents/{other_inc}/ack",
                                 headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    listed = (await client.get("/api/incidents")).json()
    assert [i["id"] for i in listed] == [seeded.incidents["east"]]
    assert [h["id"] for h in (await client.get("/api/households")).json()] == [
        seeded.households["east"]]
    page = (await client.get("/incidents")).text
    assert "east family" in page
    assert "west family" not in page
    csv_text = (await client.get("/incidents.csv")).text
    assert "east family" in csv_text
    assert "west family" not in csv_text
    today = (await client.get("/followups")).text
    assert "east family" in today
    assert "west family" not in today
    state = await db.fetch_one("SELECT state FROM incidents WHERE id = ?", (other_inc,))
    assert state == {"state": "open"}


@pytest.mark.parametrize(("path", "data"), [
    ("/incidents/{inc}/ack", {}),
    ("/incidents/{inc}/resolve", {"outcome": "false_alarm"}),
    ("/households/{hh}/followups", {"note": "x"}),
    ("/households/{hh}/visits", {"starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T09:00",
                                 "visitor": "v", "purpose": "p"}),
    ("/households/{hh}/release", {"outcome": "other", "note": "x"}),
    ("/households/{hh}/leaves", {"starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T09:00",
                                 "reason": "r"}),
    ("/users", {"username": "mallory", "password": "long enough pw", "role": "admin"}),
    ("/users/{user}/disable", {}),
    ("/users/{user}/delete", {"confirm": "yes"}),
    ("/account/password", {"current": "correct horse battery", "password": "mallory's pw1",
                           "repeat": "mallory's pw1"}),
    ("/language", {"lang": "en"}),
    ("/logout", {}),
])
async def test_forms_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, seeded: Seed, db: Database, path: str, data: dict[str, str]
) -> None:
    csrf = await login(client, ADMIN)
    url = path.format(inc=seeded.incidents["east"], hh=seeded.households["east"],
                      user=await _victim(db))
    missing = await client.post(url, data=data)
    wrong = await client.post(url, data={**data, "csrf_token": csrf[:-2] + "xx"})
    assert (missing.status_code, wrong.status_code) == (403, 403)
    rows = await db.fetch_all("SELECT state FROM incidents WHERE id = ?",
                              (seeded.incidents["east"],))
    assert rows == [{"state": "open"}]
    assert await db.fetch_one("SELECT id FROM users WHERE username = 'mallory'") is None
    assert await db.fetch_one("SELECT active FROM users WHERE username = 'west'") == {"active": 1}
    assert await db.fetch_one("SELECT COUNT(*) AS n FROM audit_log WHERE action LIKE "
                              "'user.%' AND action NOT IN ('user.add', 'user.login')") == {"n": 0}
    assert (await client.get("/api/session")).status_code == 200  # still logged in


async def test_api_changes_need_the_csrf_header(client: httpx.AsyncClient, seeded: Seed) -> None:
    csrf = await login(client, ADMIN)
    url = f"/api/incidents/{seeded.incidents['east']}/ack"
    assert (await client.post(url)).status_code == 403
    assert (await client.post(url, headers={"X-CSRF-Token": "forged"})).status_code == 403
    assert (await client.post(url, headers={"X-CSRF-Token": csrf})).status_code == 204


async def test_login_form_needs_its_csrf_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", data={"username": ADMIN, "password": "x" * 12})
    assert response.status_code == 403
