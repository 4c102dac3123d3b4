"""One-tap acknowledge: a signed, single-use, expiring link in each notification.

The token is signed with a secret shared by every server instance (kept in
``web_secrets`` like the session key) and carries the incident, the worker it
was sent to and a random nonce; itsdangerous checks the signature and the age.
The nonce's row in ``ack_links`` makes the link single-use: the first use
marks it in the same transaction that acknowledges the incident as that
worker, so two taps (or two instances) can never both count. Every use, and
every refused replay, is in the audit log.

Opening the link shows a page with one button; the button acknowledges. A GET
changes nothing because chat apps fetch links to preview them, which would
otherwise spend the link (and acknowledge) before the worker saw the alert.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ground.timeutil import to_ts, utcnow
from server.db.base import Database, Transaction
from server.domain.audit import audit
from server.domain.incident_opening import IncidentState

__all__ = [
    "AckClaim",
    "AckHook",
    "AckLinkError",
    "AckOutcome",
    "ack_secret",
    "check_token",
    "new_ack_link",
    "use_ack_link",
]

_SALT = "doorwatch.ack-link.v1"
_SECRET_NAME = "ack_link_key"  # noqa: S105  (the name of the row, not a secret)


class AckOutcome(StrEnum):
    """What pressing the button did (keys of ``ack.result.*`` in the catalogue)."""

    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already"  # somebody (or this worker elsewhere) acknowledged it before


class AckLinkError(Exception):
    """A link that cannot be used: ``reason`` is expired, invalid or used."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AckClaim:
    """What a valid token says."""

    nonce: str
    incident_id: int
    worker_id: int


AckHook = Callable[[Transaction, AckClaim], Awaitable[object]]


async def ack_secret(tx: Transaction) -> str:
    """The signing secret (created on first use, then shared by every instance)."""
    await tx.execute(
        "INSERT INTO web_secrets (name, value, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING", (_SECRET_NAME, secrets.token_urlsafe(48), to_ts(utcnow())))
    row = await tx.fetch_one("SELECT value FROM web_secrets WHERE name = ?", (_SECRET_NAME,))
    assert row is not None
    return str(row["value"])


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


async def new_ack_link(tx: Transaction, *, incident_id: int, worker_id: int,
                       lifetime_s: float, secret: str, now: datetime | None = None) -> str:
    """A fresh token acknowledging ``incident_id`` as ``worker_id`` (row written in ``tx``)."""
    nonce = secrets.token_urlsafe(12)
    created = now or utcnow()
    await tx.execute(
        "INSERT INTO ack_links (nonce, incident_id, worker_id, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (nonce, incident_id, worker_id, to_ts(created),
         to_ts(created + timedelta(seconds=lifetime_s))))
    return _serializer(secret).dumps({"n": nonce, "i": incident_id, "w": worker_id})


def check_token(token: str, *, secret: str, lifetime_s: float) -> AckClaim:
    """The claim of a correctly signed, unexpired token; :class:`AckLinkError` otherwise."""
    try:
        data: Any = _serializer(secret).loads(token, max_age=max(1, round(lifetime_s)))
    except SignatureExpired:
        raise AckLinkError("expired") from None
    except BadSignature:
        raise AckLinkError("invalid") from None
    try:
        return AckClaim(str(data["n"]), int(data["i"]), int(data["w"]))
    except (KeyError, TypeError, ValueError):
        raise AckLinkError("invalid") from None


async def use_ack_link(db: Database, token: str, *, lifetime_s: float,
                       source: str = "",
                       on_acknowledged: AckHook | None = None) -> tuple[AckClaim, AckOutcome]:
    """Spend the link and acknowledge its incident as its worker (one transaction).

    ``on_acknowledged(tx, claim)`` runs in that transaction when the link did
    acknowledge (the caller tells everyone else who was notified; the outbox
    imports this module, so it cannot be imported here).

    Raises :class:`AckLinkError` for a forged, expired or already used link
    (the refusal is audited when the link itself was genuine).
    """
    async with db.transaction() as tx:
        claim = check_token(token, secret=await ack_secret(tx), lifetime_s=lifetime_s)
    now = to_ts(utcnow())
    reason: str | None = None
    outcome = AckOutcome.ALREADY
    async with db.transaction() as tx:
        worker = await tx.fetch_one("SELECT name FROM workers WHERE id = ?", (claim.worker_id,))
        actor = f"{worker['name'] if worker else '?'} (worker:{claim.worker_id})"
        subject = f"incident:{claim.incident_id}"
        spent = await tx.execute(
            "UPDATE ack_links SET used_at = ? WHERE nonce = ? AND incident_id = ? "
            "AND worker_id = ? AND used_at IS NULL AND expires_at > ?",
            (now, claim.nonce, claim.incident_id, claim.worker_id, now))
        if spent != 1:
            row = await tx.fetch_one("SELECT used_at FROM ack_links WHERE nonce = ?",
                                     (claim.nonce,))
            reason = ("used" if row is not None and row["used_at"]
                      else "expired" if row is not None else "invalid")
            await audit(tx, actor, "incident.ack_link_refused", subject,
                        f"{reason}{' ' + source if source else ''}")
        else:
            changed = await tx.execute(
                "UPDATE incidents SET state = ?, acknowledged_at = ?, acknowledged_by = ?, "
                "updated_at = ?, escalate_at = NULL, remind_at = NULL, backup_at = NULL "
                "WHERE id = ? AND state = ?",
                (IncidentState.ACKNOWLEDGED.value, now, actor, now, claim.incident_id,
                 IncidentState.OPEN.value))
            if changed == 1:
                outcome = AckOutcome.ACKNOWLEDGED
                await audit(tx, actor, "incident.ack", subject,
                            f"one-tap link{' ' + source if source else ''}")
                if on_acknowledged is not None:
                    await on_acknowledged(tx, claim)
            await tx.execute("UPDATE ack_links SET outcome = ? WHERE nonce = ?",
                             (outcome.value, claim.nonce))
    if reason is not None:
        raise AckLinkError(reason)
    return claim, outcome
