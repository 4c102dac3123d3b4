"""Deliver queued notifications through Apprise, with retries persisted in the database.

Each due notification is first *claimed* (an UPDATE that only one server
instance can win) so several instances never send the same message twice;
every attempt is recorded with its error, and the next attempt is scheduled
by the configured backoff. Apprise does the sending, so every channel it knows
(WeCom, DingTalk, e-mail, SMS gateways, webhooks) works without code of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

import apprise

from ground.logs import get_logger
from ground.timeutil import now_ts, to_ts, utcnow
from server.config import NotifySettings
from server.db.base import Database, Row

__all__ = ["DeliveryOutcome", "NotificationSender", "send_with_apprise"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Result of one delivery attempt."""

    ok: bool
    error: str | None = None


def send_with_apprise(url: str, title: str, body: str) -> DeliveryOutcome:
    """Send one message to one Apprise URL (blocking; run it on a thread)."""
    sender = apprise.Apprise()
    if not sender.add(url):
        return DeliveryOutcome(False, "Apprise does not understand this URL")
    try:
        ok = bool(sender.notify(title=title, body=body))
    except Exception as exc:
        # Only the type: a message from deep inside a plugin may quote the URL, and this
        # text is stored and shown on the incident page.
        return DeliveryOutcome(False, f"{type(exc).__name__} while sending")
    return DeliveryOutcome(ok, None if ok else "the channel did not accept the message")


class NotificationSender:
    """Loop that delivers due notifications."""

    def __init__(self, db: Database, settings: NotifySettings, instance: str):
        self._db = db
        self._settings = settings
        self._instance = instance
        self.delivered = 0
        self.failed_attempts = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due notifications now (called when this instance queued some)."""
        self._wake.set()

    async def warm_up(self) -> None:
        """Load Apprise's plugins (~0.25 s of imports on first use in a process).

        The server does this before it subscribes: on the first breach it would
        delay that notification, and beside a backlog being drained it takes the
        GIL from ingest for a quarter of a second.
        """
        await asyncio.to_thread(apprise.Apprise().add, "json://localhost")

    async def run(self) -> None:
        """Deliver until cancelled.

        Polling finds what other instances and the timers queued; :meth:`wake`
        cuts the latency of what this instance's consumer just queued from a
        poll interval to a few milliseconds.
        """
        await self.warm_up()  # at once if serve() has done it already
        while True:
            self._wake.clear()
            sent = await self.deliver_due()
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)

    async def _claim(self) -> list[Row]:
        now = utcnow()
        until = to_ts(now + timedelta(seconds=self._settings.claim_s))
        async with self._db.transaction() as tx:
            due = await tx.fetch_all(
                "SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= ? "
                "AND (claimed_until IS NULL OR claimed_until < ?) "
                "ORDER BY next_attempt_at LIMIT 20",
                (to_ts(now), to_ts(now)),
            )
            claimed: list[Row] = []
            for row in due:
                won = await tx.execute(
                    "UPDATE notifications SET claimed_until = ?, claimed_by = ? WHERE id = ? "
                    "AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < ?)",
                    (until, self._instance, row["id"], to_ts(now)),
                )
                if won:
                    got = await tx.fetch_one(
                        "SELECT id, url, title, body, attempts, incident_id FROM notifications "
                        "WHERE id = ?", (row["id"],))
                    if got is not None:
                        claimed.append(got)
            return claimed

    async def deliver_due(self) -> int:
        """Attempt every due notification once; return how many were attempted."""
        claimed = await self._claim()
        if not claimed:
            return 0
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(send_with_apprise, r["url"], r["title"], r["body"])
              for r in claimed)
        )
        async with self._db.transaction() as tx:
            for row, outcome in zip(claimed, outcomes, strict=True):
                attempts = int(row["attempts"]) + 1
                at = now_ts()
                await tx.execute(
                    "INSERT INTO notification_attempts (notification_id, at, ok, error) "
                    "VALUES (?, ?, ?, ?)", (row["id"], at, int(outcome.ok), outcome.error))
                if outcome.ok:
                    state, next_at = "delivered", at
                elif attempts > len(self._settings.retry_delays_s):
                    state, next_at = "failed", at
                else:
                    delay = self._settings.retry_delays_s[attempts - 1]
                    state, next_at = "pending", to_ts(utcnow() + timedelta(seconds=delay))
                await tx.execute(
                    "UPDATE notifications SET state = ?, attempts = ?, next_attempt_at = ?, "
                    "last_error = ?, claimed_until = NULL, claimed_by = NULL, "
                    "delivered_at = COALESCE(?, delivered_at) WHERE id = ?",
                    (state, attempts, next_at, outcome.error, at if outcome.ok else None,
                     row["id"]))
        for row, outcome in zip(claimed, outcomes, strict=True):
            if outcome.ok:
                self.delivered += 1
                log.info("notification delivered",
                         extra={"notification_id": row["id"], "incident_id": row["incident_id"]})
            else:
                self.failed_attempts += 1
                log.warning("notification attempt failed",
                            extra={"notification_id": row["id"], "incident_id": row["incident_id"],
                                   "error": outcome.error})
        return len(claimed)
