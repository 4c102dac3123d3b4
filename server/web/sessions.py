"""Login sessions kept in the database, failed-login backoff, the cookie signing key.

The browser's cookie (signed by Starlette's SessionMiddleware) carries only a
random session token and a CSRF token; the token's SHA-256 is the key of a
``web_sessions`` row, so logging out (or an admin disabling a user) ends the
session on every server instance at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from ground.timeutil import from_ts, now_ts, to_ts, utcnow
from server.db.base import Database
from server.domain.audit import audit
from server.web.users import User, get_user

__all__ = [
    "Backoff",
    "check_backoff",
    "clear_failures",
    "end_session",
    "load_secret",
    "record_failure",
    "session_user",
    "start_session",
]

SESSION_LIFETIME = timedelta(hours=12)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def load_secret(db: Database, name: str = "session_key") -> str:
    """The secret ``name``, generated on first use and then shared by every instance."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO web_secrets (name, value, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (name, secrets.token_urlsafe(48), now_ts()),
        )
        row = await tx.fetch_one("SELECT value FROM web_secrets WHERE name = ?", (name,))
    assert row is not None
    return str(row["value"])


async def start_session(db: Database, user: User) -> str:
    """Open a session for ``user`` (audited); return the token for the cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (_digest(token), user.id, to_ts(now), to_ts(now + SESSION_LIFETIME)),
        )
        await tx.execute("DELETE FROM web_sessions WHERE expires_at < ?", (to_ts(now),))
        await audit(tx, user.username, "user.login", f"user:{user.id}")
    return token


async def session_user(db: Database, token: str | None) -> User | None:
    """The user whose unexpired session ``token`` is, if any."""
    if not token:
        return None
    row = await db.fetch_one(
        "SELECT user_id FROM web_sessions WHERE token_hash = ? AND expires_at > ?",
        (_digest(token), now_ts()),
    )
    return await get_user(db, int(row["user_id"])) if row else None


async def end_session(db: Database, token: str, user: User) -> None:
    """Log out: delete the session row (audited)."""
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_digest(token),))
        await audit(tx, user.username, "user.logout", f"user:{user.id}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How failed logins slow down further attempts for one user name."""

    free_attempts: int = 5
    first_lock_s: float = 30.0
    max_lock_s: float = 900.0

    def lock_for(self, failures: int) -> float:
        """Seconds to refuse logins after ``failures`` consecutive failures."""
        if failures < self.free_attempts:
            return 0.0
        return min(self.first_lock_s * 2.0 ** (failures - self.free_attempts), self.max_lock_s)


async def check_backoff(db: Database, username: str, now: datetime | None = None) -> float:
    """Seconds until ``username`` may try again (0 when not locked)."""
    row = await db.fetch_one("SELECT locked_until FROM login_failures WHERE username = ?",
                             (username.strip().lower(),))
    if row is None or row["locked_until"] is None:
        return 0.0
    remaining = (from_ts(row["locked_until"]) - (now or utcnow())).total_seconds()
    return max(remaining, 0.0)


async def record_failure(db: Database, username: str, policy: Backoff) -> float:
    """Count a failed login for ``username`` (audited); return the lock in seconds."""
    key = username.strip().lower()
    now = utcnow()
    async with db.transaction() as tx:
        row = await tx.fetch_one("SELECT failures FROM login_failures WHERE username = ?", (key,))
        failures = (int(row["failures"]) if row else 0) + 1
        lock = policy.lock_for(failures)
        locked_until = to_ts(now + timedelta(seconds=lock)) if lock else None
        await tx.execute(
            "INSERT INTO login_failures (username, failures, last_failed_at, locked_until) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
            "failures = excluded.failures, last_failed_at = excluded.last_failed_at, "
            "locked_until = excluded.locked_until",
            (key, failures, to_ts(now), locked_until),
        )
        await audit(tx, key[:64], "user.login_failed", None, f"failures={failures}")
    return lock


async def clear_failures(db: Database, username: str) -> None:
    """Forget failed logins after a successful one."""
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM login_failures WHERE username = ?",
                         (username.strip().lower(),))
