"""Login, backoff, logout, language; ack/resolve/leave/follow-up with audit; CSV; metrics."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from pathlib import Path

import httpx

from server.config import ServerSettings
from server.db.base import Database
from server.web.users import get_user_by_name, verify_password
from tests.web.helpers import PASSWORD, Seed, csrf_from, login


async def test_health_and_metrics_need_no_login(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "database": "sqlite"}
    text = (await client.get("/metrics")).text
    assert "doorwatch_events_ingested_total 2.0" in text
    assert 'doorwatch_incidents_open{kind="breach"} 2.0' in text
    for name in ("doorwatch_messages_rejected_total", "doorwatch_devices_online",
                 "doorwatch_notifications_failed", "doorwatch_notification_attempts_failed"):
        assert name in text


async def test_wrong_password_then_backoff_refuses_even_the_right_one(
    client: httpx.AsyncClient, db: Database
) -> None:
    csrf = csrf_from((await client.get("/login")).text)
    for _ in range(5):
        response = await client.post("/login", data={"username": "super", "password": "nope",
                                                      "csrf_token": csrf})
        assert response.status_code == 401
        assert "用户名或密码错误" in response.text
    locked = await client.post("/login", data={"username": "super", "password": PASSWORD,
                                               "csrf_token": csrf})
    assert locked.status_code == 429
    assert "秒后再试" in locked.text
    api = await client.post("/api/login", json={"username": "super", "password": PASSWORD})
    assert api.status_code == 429
    assert int(api.headers["retry-after"]) > 0
    failed = await db.fetch_all("SELECT actor FROM audit_log WHERE action = 'user.login_failed'")
    assert len(failed) == 5


async def test_unknown_user_fails_like_a_wrong_password(client: httpx.AsyncClient) -> None:
    csrf = csrf_from((await client.get("/login")).text)
    response = await client.post("/login", data={"username": "ghost", "password": "x",
                                                  "csrf_token": csrf})
    assert response.status_code == 401


async def test_logout_ends_the_session_even_for_a_copied_cookie(
    client: httpx.AsyncClient, db: Database
) -> None:
    csrf = await login(client, "admin")
    stolen = dict(client.cookies)
    response = await client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    client.cookies.clear()
    client.cookies.update(stolen)
    assert (await client.get("/api/session")).status_code == 401
    actions = [r["action"] for r in await db.fetch_all("SELECT action FROM audit_log")]
    assert "user.login" in actions
    assert "user.logout" in actions


async def test_login_redirects_only_to_local_pages(client: httpx.AsyncClient) -> None:
    page = await client.get("/login?next=//evil.example/x")
    response = await client.post("/login", data={
        "username": "super", "password": PASSWORD, "csrf_token": csrf_from(page.text),
        "next": "//evil.example/x"})
    assert response.headers["location"] == "/incidents"


async def test_session_cookie_flags(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "secure" in cookie
    assert "samesite=lax" in cookie
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_language_defaults_from_profile_and_switches(
    client: httpx.AsyncClient, db: Database
) -> None:
    csrf = await login(client, "admin")  # profile language: en
    assert "Incidents" in (await client.get("/incidents")).text
    response = await client.post("/language", data={"lang": "zh_CN", "back": "/incidents",
                                                     "csrf_token": csrf})
    assert response.headers["location"] == "/incidents"
    assert "告警事件" in (await client.get("/incidents")).text
    found = await get_user_by_name(db, "admin")
    assert found is not None
    assert found[0].language == "zh_CN"


async def test_acknowledge_resolve_and_audit(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    csrf = await login(client, "east")
    incident = seeded.incidents["east"]
    assert (await client.post(f"/incidents/{incident}/ack", data={"csrf_token": csrf})
            ).status_code == 303
    again = await client.post(f"/incidents/{incident}/ack", data={"csrf_token": csrf})
    assert "error=not_open" in again.headers["location"]
    await client.post(f"/incidents/{incident}/resolve", data={
        "csrf_token": csrf, "outcome": "false_alarm", "note": "快递员"})
    row = await db.fetch_one("SELECT state, acknowledged_by, resolved_by, outcome, note "
                             "FROM incidents WHERE id = ?", (incident,))
    assert row == {"state": "resolved", "acknowledged_by": "east", "resolved_by": "east",
                   "outcome": "false_alarm", "note": "快递员"}
    page = (await client.get(f"/incidents/{incident}")).text
    assert "误报" in page
    assert "快递员" in page
    audit = await db.fetch_all("SELECT actor, action FROM audit_log WHERE subject = ? "
                               "ORDER BY id", (f"incident:{incident}",))
    assert [a["action"] for a in audit] == ["incident.open", "incident.ack", "incident.resolve"]
    assert {a["actor"] for a in audit[1:]} == {"east"}


async def test_leave_and_followup_are_recorded_and_audited(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    csrf = await login(client, "east")
    household = seeded.households["east"]
    bad = await client.post(f"/households/{household}/leaves", data={
        "csrf_token": csrf, "starts_at": "2030-01-01T10:00", "ends_at": "2030-01-01T09:00",
        "reason": "hospital"})
    assert "error=leave_window" in bad.headers["location"]
    await client.post(f"/households/{household}/leaves", data={
        "csrf_token": csrf, "starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T11:00",
        "reason": "医院复查"})
    leave = await db.fetch_one("SELECT id, starts_at, ends_at, reason, granted_by FROM leaves")
    assert leave is not None
    assert (leave["starts_at"], leave["ends_at"]) == ("2030-01-01T00:00:00.000000Z",
                                                      "2030-01-01T03:00:00.000000Z")
    assert (leave["reason"], leave["granted_by"]) == ("医院复查", "east")
    await client.post(f"/leaves/{leave['id']}/end", data={"csrf_token": csrf})
    await client.post(f"/households/{household}/followups", data={
        "csrf_token": csrf, "member": "household", "temp": "36.7", "symptom": "",
        "symptoms": "无", "note": "ok"})
    page = (await client.get("/households")).text
    assert "已随访" in page
    actions = [r["action"] for r in await db.fetch_all(
        "SELECT action FROM audit_log WHERE actor = 'east' ORDER BY id")]
    assert actions[-3:] == ["leave.grant", "leave.end", "followup.record"]


async def test_csv_export_rows(client: httpx.AsyncClient, seeded: Seed) -> None:
    await login(client, "super")
    response = await client.get("/incidents.csv?state=open&sort=oldest")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text.removeprefix("\ufeff"))))
    assert [int(r["id"]) for r in rows] == [seeded.incidents["east"], seeded.incidents["west"]]
    assert rows[0]["household"] == "east family"
    assert rows[0]["kind"] == "违规外出"
    assert rows[0]["grid"] == "east-grid"
    assert rows[0]["seconds_to_ack"] == ""


async def test_bad_filter_is_a_clear_400(client: httpx.AsyncClient) -> None:
    await login(client, "super")
    response = await client.get("/api/incidents?state=bogus")
    assert response.status_code == 400
    assert "state" in response.json()["detail"]


async def test_charts_are_inline_svg(client: httpx.AsyncClient) -> None:
    await login(client, "super")
    page = (await client.get("/charts?days=7")).text
    assert page.count("<svg") >= 1
    assert "违规外出 (2)" in page


async def test_user_add_cli(settings: ServerSettings, db: Database, tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'database_url = "{settings.database_url}"\n', encoding="utf-8")

    def run(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "doorwatch", "user", "add", *args,
                               "--config", str(config), "--password-stdin"],
                              input=password + "\n", capture_output=True, text=True,
                              timeout=60, check=False)

    result = await asyncio.to_thread(run, "boss", "--role", "admin", "--language", "en",
                                     password="a very long password")
    assert result.returncode == 0, result.stderr
    assert "Created user boss (admin)" in result.stdout
    found = await get_user_by_name(db, "boss")
    assert found is not None
    assert verify_password(found[1], "a very long password")
    short = await asyncio.to_thread(run, "tiny", password="short")
    assert short.returncode == 2
    assert "[password]" in short.stderr
