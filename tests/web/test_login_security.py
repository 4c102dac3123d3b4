"""Issue 17, items 2, 3, 7 and 9: login throttling, login timing, disabled workers, 4xx not 500.

Every test talks HTTP to the app served by uvicorn on a loopback socket;
different sources are different loopback addresses (127.0.0.2, ...), as
different machines would be.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from types import SimpleNamespace

import httpx
import pytest

from server.db.base import Database
from server.domain.people import WorkerUpdate, update_worker
from server.web.throttle import Backoff, source_of
from tests.web.conftest import Served
from tests.web.helpers import PASSWORD, Seed

ATTACKER, ELSEWHERE, SPRAYER = "127.0.0.2", "127.0.0.3", "127.0.0.4"


async def _api_login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/login", json={"username": username, "password": password})


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


async def test_wrong_passwords_from_one_source_do_not_lock_out_the_user_elsewhere(
    served: Served, db: Database
) -> None:
    async with served.client(ATTACKER) as attacker, served.client(ELSEWHERE) as real:
        for n in range(5):
            # A forged X-Forwarded-For does not make each guess come from a new source.
            answer = await attacker.post("/api/login", json={"username": "super",
                                                             "password": "guess"},
                                         headers={"X-Forwarded-For": f"203.0.113.{n}"})
            assert answer.status_code == 401
        refused = await _api_login(attacker, "super", PASSWORD)
        assert refused.status_code == 429  # the attacker's source waits, even with the password
        assert int(refused.headers["retry-after"]) > 0
        assert (await _api_login(attacker, "super", "again")).status_code == 429
        # The real supervisor, from another machine, logs in at once.
        real_login = await _api_login(real, "super", PASSWORD)
        assert real_login.status_code == 200, real_login.text
        assert (await real.get("/api/incidents")).status_code == 200
        metrics = (await real.get("/metrics")).text

    failed = await db.fetch_all("SELECT actor, detail FROM audit_log "
                                "WHERE action = 'user.login_failed' ORDER BY id")
    assert len(failed) == 5
    assert all(r["actor"] == "super" and f"source={ATTACKER}" in r["detail"] for r in failed)
    throttled = await db.fetch_all("SELECT detail FROM audit_log "
                                   "WHERE action = 'user.login_throttled'")
    assert len(throttled) == 1  # the first refusal of the lock, not every one
    assert f"source={ATTACKER}" in throttled[0]["detail"]
    logins = await db.fetch_all("SELECT detail FROM audit_log WHERE action = 'user.login'")
    assert [r["detail"] for r in logins] == [f"source={ELSEWHERE}"]
    assert _metric(metrics, "doorwatch_login_attempts_total", 'outcome="failed"') == 5
    assert _metric(metrics, "doorwatch_login_attempts_total", 'outcome="throttled"') == 2
    assert _metric(metrics, "doorwatch_login_attempts_total", 'outcome="success"') == 1
    assert _metric(metrics, "doorwatch_login_locked", 'scope="user_source"') == 1


async def test_one_source_spraying_many_names_is_throttled_as_a_source(
    served: Served, db: Database
) -> None:
    async with served.client(SPRAYER) as sprayer, served.client(ELSEWHERE) as real:
        for n in range(20):
            assert (await _api_login(sprayer, f"name{n}", "guess")).status_code == 401
        # Every name now waits from this source, including real ones with the right password.
        assert (await _api_login(sprayer, "admin", PASSWORD)).status_code == 429
        assert (await _api_login(real, "admin", PASSWORD)).status_code == 200
    locked = await db.fetch_all("SELECT key FROM login_throttle WHERE locked_until IS NOT NULL")
    assert [r["key"] for r in locked] == [f"source:{SPRAYER}"]


async def test_a_burst_of_parallel_guesses_gets_no_more_than_the_free_attempts(
    served: Served,
) -> None:
    async with served.client(ATTACKER) as attacker:
        answers = await asyncio.gather(*(_api_login(attacker, "admin", f"guess{n}")
                                         for n in range(15)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 10, codes


async def test_login_takes_as_long_for_an_unknown_name_as_for_a_known_one(
    served: Served,
) -> None:
    """Both paths verify one argon2 hash. The bound is generous (medians within a factor
    of two of each other, samples interleaved): skipping the hash for unknown names made
    them 4-10 times faster, which this catches on any machine."""
    served.app.state.backoff = Backoff(free_attempts=1000, source_free_attempts=1000)
    known: list[float] = []
    unknown: list[float] = []
    async with served.client(ATTACKER) as http:
        await _api_login(http, "warm-up", "x")
        for n in range(15):
            for name, samples in (("super", known), (f"nobody{n}", unknown)):
                started = time.perf_counter()
                assert (await _api_login(http, name, "wrong password")).status_code == 401
                samples.append(time.perf_counter() - started)
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (f"unknown {statistics.median(unknown) * 1e3:.1f} ms, "
                               f"known {statistics.median(known) * 1e3:.1f} ms")


async def test_a_worker_marked_inactive_loses_the_open_session_and_cannot_log_in(
    served: Served, db: Database, seeded: Seed
) -> None:
    async with served.client() as east, served.client(ELSEWHERE) as again:
        assert (await _api_login(east, "east", PASSWORD)).status_code == 200
        assert (await east.get("/api/households")).status_code == 200
        await update_worker(db, seeded.workers["east"], WorkerUpdate(active=False),
                            actor="admin")
        assert (await east.get("/api/households")).status_code == 401
        page = await east.get("/households", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
        assert (await _api_login(again, "east", PASSWORD)).status_code == 401
        # Serving again: a new login works; the old session stays ended.
        await update_worker(db, seeded.workers["east"], WorkerUpdate(active=True),
                            actor="admin")
        assert (await east.get("/api/households")).status_code == 401
        assert (await _api_login(again, "east", PASSWORD)).status_code == 200


async def test_role_and_active_flag_are_read_on_every_request(
    served: Served, db: Database
) -> None:
    async with served.client() as http:
        assert (await _api_login(http, "super", PASSWORD)).status_code == 200
        assert (await http.get("/api/audit")).status_code == 200
        async with db.transaction() as tx:
            await tx.execute("UPDATE users SET role = 'installer' WHERE username = 'super'")
        assert (await http.get("/api/audit")).status_code == 403
        async with db.transaction() as tx:
            await tx.execute("UPDATE users SET active = 0 WHERE username = 'super'")
        assert (await http.get("/api/devices")).status_code == 401


# Each of these was a 500 (or, for ``after``, a stream that broke after it had started).
ODD_REQUESTS = [
    ("GET", "/charts?days=%C2%B2", {}, None),
    ("GET", "/charts?days=" + "9" * 5000, {}, None),
    ("GET", "/live/incidents", {"Last-Event-ID": b"\xb2"}, None),
    ("GET", "/live/incidents", {"Last-Event-ID": "9" * 5000}, None),
    ("GET", f"/live/incidents?after={10**20}", {}, None),
    ("POST", "/users", {}, "²"),
    ("POST", "/users", {}, "1" * 5000),
    ("POST", "/users", {}, str(10**20)),
]


@pytest.mark.parametrize(("method", "path", "headers", "worker_id"), ODD_REQUESTS,
                         ids=["days-superscript", "days-5000-digits", "last-event-id-xb2",
                              "last-event-id-5000-digits", "after-1e20", "worker-id-superscript",
                              "worker-id-5000-digits", "worker-id-1e20"])
async def test_odd_numbers_are_a_4xx_not_a_500(
    served: Served, method: str, path: str, headers: dict[str, object], worker_id: str | None
) -> None:
    async with served.client() as http:
        answer = await _api_login(http, "admin", PASSWORD)
        assert answer.status_code == 200
        csrf = str(answer.json()["csrf_token"])
        if method == "GET":
            answer = await http.get(path, headers=headers)  # type: ignore[arg-type]
        else:
            answer = await http.post(path, data={
                "username": "newbie", "password": "long enough pw", "role": "installer",
                "worker_id": worker_id or "", "csrf_token": csrf})
        assert 400 <= answer.status_code < 500, answer.status_code
        assert answer.headers["content-type"].startswith("text/html")  # a page, not a stream
        assert (await http.get("/charts?days=30")).status_code == 200


async def test_unauthenticated_api_login_with_the_wrong_content_type_is_a_422(
    served: Served,
) -> None:
    body = b'{"username": "admin", "password": "hunter2-secret"}'
    async with served.client(ATTACKER) as http:
        for headers in ({"Content-Type": "text/plain"}, {}, {"Content-Type": "text/plain"}):
            answer = await http.post("/api/login", content=body, headers=headers)
            assert answer.status_code == 422, answer.text
            assert "hunter2" not in answer.text  # the body (a password) is not echoed
        answer = await http.post("/api/login", content=b"\xff\xfe garbage",
                                 headers={"Content-Type": "text/plain"})
        assert answer.status_code == 422


def test_an_ipv6_client_counts_by_its_64() -> None:
    def source(host: str) -> str:
        return source_of(SimpleNamespace(client=SimpleNamespace(host=host)))  # type: ignore[arg-type]

    assert source("2001:db8::1") == source("2001:db8::ffff:2") == "2001:db8::/64"
    assert source("2001:db8:0:1::1") != source("2001:db8::1")
    assert source("::ffff:10.1.2.3") == "10.1.2.3"
    assert source("127.0.0.2") == "127.0.0.2"
