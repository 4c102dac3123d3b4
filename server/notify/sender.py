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
from apprise.attachment.memory import AttachMemory

from ground.i18n import t
from ground.logs import get_logger
from ground.timeutil import from_ts, now_ts, to_ts, utcnow
from server.config import NotifySettings
from server.db.base import Database, Row
from server.notify.evidence import crop_to_budget, incident_evidence

__all__ = ["DeliveryOutcome", "NotificationSender", "send_with_apprise"]

log = get_logger(__name__)

# Notifications that carry the incident's picture (closure notices do not).
_WITH_EVIDENCE = frozenset({"alert", "reminder", "escalation", "backup"})
# How soon an alert waiting for its snapshot is tried again.
_EVIDENCE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Result of one delivery attempt."""

    ok: bool
    error: str | None = None


def send_with_apprise(url: str, title: str, body: str, *, picture: bytes | None = None,
                      picture_link: str | None = None,
                      document: tuple[str, bytes] | None = None) -> DeliveryOutcome:
    """Send one message to one Apprise URL (blocking; run it on a thread).

    ``picture`` (a JPEG) is attached where the channel takes attachments
    (Apprise's ``attachment_support``); elsewhere ``picture_link`` is added
    to the text instead. ``document`` (name, PDF) is attached the same way; its
    link is already in the text (a grid report's body names it).
    """
    sender = apprise.Apprise()
    if not sender.add(url):
        return DeliveryOutcome(False, "Apprise does not understand this URL")
    attach = None
    takes_files = all(server.attachment_support for server in sender)
    if picture is not None:
        if takes_files:
            attach = AttachMemory(  # type: ignore[no-untyped-call]
                content=picture, name="evidence.jpg", mimetype="image/jpeg")
        elif picture_link:
            body = f"{body}\n{picture_link}"
    elif document is not None and takes_files:
        attach = AttachMemory(  # type: ignore[no-untyped-call]
            content=document[1], name=document[0], mimetype="application/pdf")
    try:
        ok = bool(sender.notify(title=title, body=body, attach=attach))
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
        self._dashboard_url = settings.dashboard_url
        self._waiting_for_evidence = False

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
            self._waiting_for_evidence = False
            sent = await self.deliver_due()
            if not sent:
                # An alert waiting for its snapshot is looked at again soon, not a poll later.
                pause = (min(_EVIDENCE_POLL_S, self._settings.poll_interval_s)
                         if self._waiting_for_evidence else self._settings.poll_interval_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

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
                        "SELECT n.id, n.url, n.title, n.body, n.attempts, n.incident_id, "
                        "n.purpose, n.created_at, n.report_id, w.language FROM notifications n "
                        "LEFT JOIN workers w ON w.id = n.worker_id WHERE n.id = ?", (row["id"],))
                    if got is not None:
                        claimed.append(got)
            return claimed

    async def _pictures(self, claimed: list[Row]) -> tuple[dict[int, bytes], list[Row]]:
        """The cropped evidence per incident of the alerts among ``claimed``, and the alerts
        put back for a moment because their snapshot is announced but not here yet."""
        pictures: dict[int, bytes] = {}
        deferred: list[Row] = []
        seen: dict[int, tuple[bytes | None, bool]] = {}
        for row in claimed:
            incident = row["incident_id"]
            if incident is None or row["purpose"] not in _WITH_EVIDENCE:
                continue
            if incident not in seen:
                evidence, waiting = await incident_evidence(self._db, int(incident))
                picture = None
                if evidence is not None:
                    try:
                        picture = await asyncio.to_thread(
                            crop_to_budget, evidence.jpeg, evidence.region,
                            max_side=self._settings.evidence_max_side,
                            max_bytes=self._settings.evidence_max_bytes)
                    except (OSError, ValueError):
                        log.warning("snapshot unreadable; alert sent without it",
                                    extra={"incident_id": incident,
                                           "event_id": evidence.event_id})
                seen[int(incident)] = (picture, waiting)
            picture, waiting = seen[int(incident)]
            age = (utcnow() - from_ts(row["created_at"])).total_seconds()
            if picture is None and waiting and age < self._settings.evidence_wait_s:
                deferred.append(row)
            elif picture is not None:
                pictures[int(row["id"])] = picture
        if deferred:
            soon = to_ts(utcnow() + timedelta(seconds=_EVIDENCE_POLL_S))
            async with self._db.transaction() as tx:
                for row in deferred:
                    await tx.execute(
                        "UPDATE notifications SET claimed_until = NULL, claimed_by = NULL, "
                        "next_attempt_at = ? WHERE id = ? AND claimed_by = ?",
                        (soon, row["id"], self._instance))
            self._waiting_for_evidence = True
        return pictures, deferred

    async def _documents(self, claimed: list[Row]) -> dict[int, tuple[str, bytes]]:
        """The stored report PDF per notification that announces a grid report."""
        found: dict[int, tuple[str, bytes]] = {}
        for row in claimed:
            if row["report_id"] is None:
                continue
            report = await self._db.fetch_one(
                "SELECT kind, first_day, pdf FROM reports WHERE id = ?", (row["report_id"],))
            if report is not None:
                found[int(row["id"])] = (f"report-{report['first_day']}-{report['kind']}.pdf",
                                         bytes(report["pdf"]))
        return found

    async def deliver_due(self) -> int:
        """Attempt every due notification once; return how many were attempted."""
        claimed = await self._claim()
        if not claimed:
            return 0
        pictures, deferred = await self._pictures(claimed)
        if deferred:
            put_back = {int(r["id"]) for r in deferred}
            claimed = [r for r in claimed if int(r["id"]) not in put_back]
            if not claimed:
                return 0
        base = self._dashboard_url.rstrip("/")
        documents = await self._documents(claimed)
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(
                send_with_apprise, r["url"], r["title"], r["body"],
                picture=pictures.get(int(r["id"])), document=documents.get(int(r["id"])),
                picture_link=t("notify.evidence_link", r["language"],
                               link=f"{base}/incidents/{r['incident_id']}/evidence.jpg"))
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
