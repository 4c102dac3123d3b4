"""Failed-login throttling per user name *and* source, kept in the database.

Two counters slow guessing down without handing an attacker a way to lock
people out:

* per (user name, source address): after a few failures that pair waits,
  doubling up to a maximum. The real user, logging in from anywhere else, is
  not affected, and a success from a source clears only that source's pair.
* per source address, whatever user names it tries: a larger budget, so one
  address cannot spray passwords over every account.

An attempt is counted *before* the password is checked, in one transaction,
so a burst of parallel guesses cannot all pass the check before the first
failure is written; a success takes its count back. Counts older than
``forget_after_s`` start again from zero. Counters live in the database, so
every server instance enforces the same limits and a restart forgets
nothing. Each failure, and the first refusal of each lock, is an audit
record; ``login_stats`` keeps monotonic counts for ``/metrics``.

Behind a reverse proxy the source is the proxy's address unless the proxy is
listed in ``http.trusted_proxies`` (see docs/security.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from fastapi import Request

from ground.timeutil import from_ts, to_ts, utcnow
from server.db.base import Database, Transaction
from server.domain.audit import audit

__all__ = [
    "Backoff",
    "LoginOutcomeKind",
    "attempt_failed",
    "attempt_succeeded",
    "begin_attempt",
    "locked_now",
    "login_counts",
    "source_of",
]


class LoginOutcomeKind(StrEnum):
    """How a login attempt ended (the ``outcome`` label of the metric)."""

    SUCCESS = "success"
    FAILED = "failed"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Backoff:
    """How failed logins slow down further attempts."""

    free_attempts: int = 5
    """Failures of one user name from one source before it has to wait."""
    source_free_attempts: int = 20
    """Failures from one source, over any user names, before it has to wait."""
    first_lock_s: float = 30.0
    max_lock_s: float = 900.0
    forget_after_s: float = 3600.0
    """Failures older than this (since the last one) no longer count."""

    def lock_for(self, failures: int, free: int) -> float:
        """Seconds to refuse after ``failures`` counted failures with ``free`` allowed."""
        if failures < free:
            return 0.0
        return min(self.first_lock_s * 2.0 ** (failures - free), self.max_lock_s)


def source_of(request: Request) -> str:
    """The client's address as the server sees it (after trusted proxies' headers).

    An IPv6 client counts by its /64: one machine usually holds a whole /64
    and could otherwise take a fresh address for every guess.
    """
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address)
               else address)


def _pair_key(username: str, source: str) -> str:
    return f"user:{username.strip().lower()[:128]}|{source}"


def _source_key(source: str) -> str:
    return f"source:{source}"


async def _bump(tx: Transaction, key: str, free: int, policy: Backoff, now: datetime) -> int:
    """Count one failure under ``key`` (forgetting stale ones); return the new count."""
    row = await tx.fetch_one(
        "SELECT failures, last_failed_at FROM login_throttle WHERE key = ?", (key,))
    failures = 1
    if row is not None and (now - from_ts(row["last_failed_at"])).total_seconds() \
            < policy.forget_after_s:
        failures = int(row["failures"]) + 1
    lock = policy.lock_for(failures, free)
    await tx.execute(
        "INSERT INTO login_throttle (key, failures, last_failed_at, locked_until, refused) "
        "VALUES (?, ?, ?, ?, 0) ON CONFLICT (key) DO UPDATE SET "
        "failures = excluded.failures, last_failed_at = excluded.last_failed_at, "
        "locked_until = excluded.locked_until, refused = 0",
        (key, failures, to_ts(now), to_ts(now + timedelta(seconds=lock)) if lock else None),
    )
    return failures


async def _count(tx: Transaction, outcome: LoginOutcomeKind) -> None:
    await tx.execute("UPDATE login_stats SET attempts = attempts + 1 WHERE outcome = ?",
                     (outcome.value,))


async def begin_attempt(
    db: Database, username: str, source: str, policy: Backoff, now: datetime | None = None
) -> float:
    """Seconds this attempt must wait (refused), or 0 after counting it as a failure so far."""
    now = now or utcnow()
    keys = (_pair_key(username, source), _source_key(source))
    async with db.transaction() as tx:
        rows = await tx.fetch_all(
            "SELECT key, locked_until, refused FROM login_throttle WHERE key IN (?, ?)", keys)
        waits = {str(r["key"]): (from_ts(r["locked_until"]) - now).total_seconds()
                 for r in rows if r["locked_until"] is not None}
        wait = max([0.0, *waits.values()])
        if wait > 0:
            await _count(tx, LoginOutcomeKind.THROTTLED)
            for row in rows:
                if waits.get(str(row["key"]), 0.0) > 0:
                    if int(row["refused"]) == 0:  # the first refusal of this lock only
                        await audit(tx, username.strip()[:64] or "?", "user.login_throttled",
                                    None, f"source={source} locked={row['key']} "
                                    f"wait_s={round(wait)}")
                    await tx.execute(
                        "UPDATE login_throttle SET refused = refused + 1 WHERE key = ?",
                        (row["key"],))
            return wait
        await _bump(tx, keys[0], policy.free_attempts, policy, now)
        await _bump(tx, keys[1], policy.source_free_attempts, policy, now)
    return 0.0


async def attempt_failed(db: Database, username: str, source: str) -> None:
    """The password was wrong (or the user unknown): audit it with the counts."""
    keys = (_pair_key(username, source), _source_key(source))
    async with db.transaction() as tx:
        rows = {str(r["key"]): r for r in await tx.fetch_all(
            "SELECT key, failures, locked_until FROM login_throttle WHERE key IN (?, ?)", keys)}
        await _count(tx, LoginOutcomeKind.FAILED)
        pair, src = rows.get(keys[0]), rows.get(keys[1])
        await audit(
            tx, username.strip()[:64] or "?", "user.login_failed", None,
            f"source={source} failures={pair['failures'] if pair else 0} "
            f"source_failures={src['failures'] if src else 0}"
            + (f" locked_until={pair['locked_until']}" if pair and pair["locked_until"] else ""),
        )


async def attempt_succeeded(db: Database, username: str, source: str, policy: Backoff) -> None:
    """The password was right: forget this pair's failures, take back the source's count."""
    async with db.transaction() as tx:
        await _count(tx, LoginOutcomeKind.SUCCESS)
        await tx.execute("DELETE FROM login_throttle WHERE key = ?",
                         (_pair_key(username, source),))
        key = _source_key(source)
        row = await tx.fetch_one("SELECT failures FROM login_throttle WHERE key = ?", (key,))
        if row is not None:
            failures = max(int(row["failures"]) - 1, 0)
            if policy.lock_for(failures, policy.source_free_attempts) == 0:
                await tx.execute("UPDATE login_throttle SET failures = ?, locked_until = NULL "
                                 "WHERE key = ?", (failures, key))
            else:
                await tx.execute("UPDATE login_throttle SET failures = ? WHERE key = ?",
                                 (failures, key))


async def login_counts(db: Database) -> dict[str, float]:
    """Attempts by outcome since the database was created (for ``/metrics``)."""
    rows = await db.fetch_all("SELECT outcome, attempts FROM login_stats")
    return {str(r["outcome"]): float(r["attempts"]) for r in rows}


async def locked_now(db: Database, now: datetime | None = None) -> dict[str, float]:
    """How many user-and-source pairs and sources are waiting right now."""
    rows = await db.fetch_all(
        "SELECT key FROM login_throttle WHERE locked_until IS NOT NULL AND locked_until > ?",
        (to_ts(now or utcnow()),))
    pairs = sum(1 for r in rows if str(r["key"]).startswith("user:"))
    return {"user_source": float(pairs), "source": float(len(rows) - pairs)}
