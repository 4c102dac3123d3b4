"""Login sessions kept in the database, and the cookie signing key.

The browser's cookie (signed by Starlette's SessionMiddleware) carries only a
random session token and a CSRF token; the token's SHA-256 is the key of a
``web_sessions`` row, so logging out (or an admin disabling a user) ends the
session on every server instance at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from ground.timeutil import now_ts, to_ts, utcnow
from server.db.base import Database, Transaction
from server.domain.audit import audit
from server.web.users import User, get_user_with_id_from

__all__ = [
    "end_session",
    "end_user_sessions",
    "load_secret",
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


async def start_session(db: Database, user: User, source: str | None = None) -> str:
    """Open a session for ``user`` (audited with the source address); return the token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (_digest(token), user.id, to_ts(now), to_ts(now + SESSION_LIFETIME)),
        )
        await tx.execute("DELETE FROM web_sessions WHERE expires_at < ?", (to_ts(now),))
        await audit(tx, user.username, "user.login", f"user:{user.id}",
                    f"source={source}" if source else None)
    return token


async def session_user(db: Database, token: str | None) -> User | None:
    """The user whose unexpired session ``token`` is, if any.

    Called on every request: the user (and the worker it is linked to) is read
    again each time, so disabling either, or changing the role, takes effect
    on the very next request of an open session.
    """
    if not token:
        return None
    return await get_user_with_id_from(
        db, "SELECT user_id FROM web_sessions WHERE token_hash = ? AND expires_at > ?",
        (_digest(token), now_ts()))


async def end_session(db: Database, token: str, user: User) -> None:
    """Log out: delete the session row (audited)."""
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_digest(token),))
        await audit(tx, user.username, "user.logout", f"user:{user.id}")


async def end_user_sessions(tx: Transaction, user_id: int) -> int:
    """End every session of ``user_id`` (inside the caller's transaction); return how many."""
    return await tx.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))
