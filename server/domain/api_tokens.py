"""Scoped, read-only API tokens for machine access (the health office; issue 19, item 6).

An admin creates a token with a name, scopes (what it may read), optionally
one grid it is limited to and an expiry; the token text is shown once and
only its SHA-256 is stored. Tokens are 256 random bits, so a fast unsalted
hash is enough: nobody can guess a preimage, and the lookup by hash is one
index probe (a slow password hash would make every API call slow). Revoking
is immediate. Each use counts against a per-token budget per minute, kept
in the token's row (``window_start``, ``window_count``, one conditional
UPDATE), so the limit holds across several server instances. Creating,
revoking and every use are audited.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ground.timeutil import now_ts, to_ts, utcnow
from server.db.base import Database, Row
from server.domain.audit import audit
from server.domain.common import dumps, fetch_required, loads_list, when
from server.domain.errors import InvalidChangeError

__all__ = [
    "PREFIX",
    "ApiToken",
    "ApiTokenIn",
    "Scope",
    "TokenRefusedError",
    "create_token",
    "list_tokens",
    "revoke_token",
    "use_token",
]

PREFIX = "dwt_"


class Scope(StrEnum):
    """What a token may read."""

    INCIDENTS = "read:incidents"
    FOLLOWUPS = "read:followups"
    EXPORT = "read:export"


class ApiTokenIn(BaseModel):
    """A token to create."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, description="Who uses it (health office)")
    scopes: list[Scope] = Field(min_length=1)
    grid_id: int | None = Field(None, description="Limit it to one grid's households")
    expires_days: int | None = Field(None, ge=1, le=3650)


class ApiToken(BaseModel):
    """A token as stored (never its text)."""

    id: int
    name: str
    prefix: str
    scopes: list[Scope]
    grid_id: int | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> ApiToken:
        """Build from an ``api_tokens`` row."""
        return cls(
            id=int(row["id"]), name=row["name"], prefix=row["prefix"],
            scopes=[Scope(s) for s in loads_list(row["scopes"])],
            grid_id=None if row["grid_id"] is None else int(row["grid_id"]),
            created_by=row["created_by"], created_at=when(row["created_at"]),
            expires_at=when(row["expires_at"]), revoked_at=when(row["revoked_at"]),
            revoked_by=row["revoked_by"], last_used_at=when(row["last_used_at"]))

    @property
    def active(self) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None
                                            or self.expires_at > utcnow())


class TokenRefusedError(Exception):
    """A request's token does not allow it: ``status`` 401 (unknown, revoked, expired),
    403 (scope) or 429 (over its budget, ``retry_after_s``)."""

    def __init__(self, status: int, reason: str, retry_after_s: int | None = None):
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s
        super().__init__(reason)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(db: Database, token: ApiTokenIn, *, actor: str) -> tuple[int, str]:
    """Create a token; return its id and its text (shown once, never stored)."""
    text = PREFIX + secrets.token_urlsafe(32)
    expires = (None if token.expires_days is None
               else to_ts(utcnow() + timedelta(days=token.expires_days)))
    async with db.transaction() as tx:
        if token.grid_id is not None:
            await fetch_required(tx, "grid", token.grid_id, "SELECT id FROM grids WHERE id = ?",
                                 (token.grid_id,))
        row = await tx.fetch_one(
            "INSERT INTO api_tokens (name, token_hash, prefix, scopes, grid_id, created_by, "
            "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (token.name, _hash(text), text[:len(PREFIX) + 6],
             dumps([s.value for s in token.scopes]), token.grid_id, actor, now_ts(), expires))
        assert row is not None
        await audit(tx, actor, "api_token.create", f"api_token:{row['id']}",
                    f"{token.name}; {', '.join(s.value for s in token.scopes)}"
                    + (f"; grid {token.grid_id}" if token.grid_id else "")
                    + (f"; expires {expires}" if expires else ""))
        return int(row["id"]), text


async def revoke_token(db: Database, token_id: int, *, actor: str) -> None:
    """Revoke a token at once."""
    async with db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? "
            "AND revoked_at IS NULL", (now_ts(), actor, token_id))
        if not changed:
            await fetch_required(tx, "API token", token_id,
                                 "SELECT id FROM api_tokens WHERE id = ?", (token_id,))
            raise InvalidChangeError("api_token", token_id, "already_revoked")
        await audit(tx, actor, "api_token.revoke", f"api_token:{token_id}", None)


async def list_tokens(db: Database) -> list[ApiToken]:
    """Every token, newest first."""
    rows = await db.fetch_all("SELECT * FROM api_tokens ORDER BY id DESC")
    return [ApiToken.from_row(r) for r in rows]


async def use_token(db: Database, text: str | None, scope: Scope, *, what: str,
                    per_minute: int) -> ApiToken:
    """Check a request's token for ``scope``, count it against its budget, audit the use."""
    if not text or not text.startswith(PREFIX):
        raise TokenRefusedError(401, "token required")
    now = utcnow()
    window = to_ts(now.replace(second=0, microsecond=0))
    async with db.transaction() as tx:
        row = await tx.fetch_one("SELECT * FROM api_tokens WHERE token_hash = ?", (_hash(text),))
        if row is None:
            raise TokenRefusedError(401, "unknown token")
        token = ApiToken.from_row(row)
        if not token.active:
            raise TokenRefusedError(401, "token revoked or expired")
        if scope not in token.scopes:
            raise TokenRefusedError(403, f"token lacks scope {scope.value}")
        counted = await tx.fetch_one(
            "UPDATE api_tokens SET window_count = CASE WHEN window_start = ? "
            "THEN window_count + 1 ELSE 1 END, window_start = ?, last_used_at = ? "
            "WHERE id = ? RETURNING window_count", (window, window, to_ts(now), token.id))
        assert counted is not None
        if int(counted["window_count"]) > per_minute:
            raise TokenRefusedError(429, "too many requests", retry_after_s=60 - now.second)
        await audit(tx, f"token:{token.name}", "api_token.use", f"api_token:{token.id}", what)
    return token
