"""The one-tap acknowledge page: the link in a notification, no log-in (server/domain/ack_links.py).

GET shows the incident and one big button (and changes nothing: chat apps
fetch links to preview them); POST acknowledges as the worker the link was
sent to. A used, expired or forged link gets a page saying so in plain words.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ground.i18n import normalize_language, t
from ground.timeutil import to_ts, utcnow
from server.db.base import Transaction
from server.domain.ack_links import (
    AckClaim,
    AckHook,
    AckLinkError,
    ack_secret,
    check_token,
    use_ack_link,
)
from server.domain.notification_outbox import NotificationContext, Purpose, queue_closure
from server.web.deps import Db, Settings
from server.web.render import local_time, templates

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

def _tell_the_others(context: NotificationContext) -> AckHook:
    """Everyone else who was notified is told the incident was acknowledged."""

    async def hook(tx: Transaction, claim: AckClaim) -> None:
        await queue_closure(tx, incident_id=claim.incident_id, purpose=Purpose.ACKNOWLEDGED,
                            context=context, skip_worker=claim.worker_id)

    return hook


_STATUS = {"used": 410, "expired": 410, "invalid": 400}


async def _incident(db: Db, claim: AckClaim, zone: str, language: str) -> dict[str, Any] | None:
    row = await db.fetch_one(
        "SELECT i.kind, i.opened_at, i.crossed_at, i.acknowledged_by, h.name AS household, "
        "h.address FROM incidents i JOIN households h ON h.id = i.household_id WHERE i.id = ?",
        (claim.incident_id,))
    if row is None:
        return None
    return {"kind_text": t(f"incident.kind.{row['kind']}", language),
            "household": row["household"], "address": row["address"],
            "when": local_time(row["crossed_at"] or row["opened_at"], zone),
            "acknowledged_by": row["acknowledged_by"]}


async def _worker(db: Db, worker_id: int) -> tuple[str, str]:
    row = await db.fetch_one("SELECT name, language FROM workers WHERE id = ?", (worker_id,))
    return (str(row["name"]), normalize_language(row["language"])) if row else ("?", "zh_CN")


def _page(request: Request, language: str, status: int = 200, **context: Any) -> Response:
    context.update(lang=language, _=lambda key, **v: t(key, language, **v))
    return templates.TemplateResponse(request, "ack.html", context, status_code=status)


def _refused(request: Request, reason: str, language: str) -> Response:
    return _page(request, language, _STATUS.get(reason, 400), state="error",
                 heading=t("ack.error.title", language),
                 message=t(f"ack.error.{reason}", language), incident=None)


def _language(request: Request) -> str:
    # Before the token is read, the phone's own language is the best guess.
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "zh_CN"


@router.get("/a/{token}")
async def ack_page(request: Request, token: str, db: Db, settings: Settings) -> Response:
    """The incident and one button; nothing changes yet."""
    lifetime = settings.notify.ack_link_lifetime_s
    async with db.transaction() as tx:
        secret = await ack_secret(tx)
    try:
        claim = check_token(token, secret=secret, lifetime_s=lifetime)
    except AckLinkError as exc:
        return _refused(request, exc.reason, _language(request))
    worker, language = await _worker(db, claim.worker_id)
    used = await db.fetch_one("SELECT used_at, expires_at FROM ack_links WHERE nonce = ?",
                              (claim.nonce,))
    if used is None:
        return _refused(request, "invalid", language)
    if used["used_at"]:
        return _refused(request, "used", language)
    if used["expires_at"] <= to_ts(utcnow()):
        return _refused(request, "expired", language)
    incident = await _incident(db, claim, settings.notify.timezone, language)
    return _page(request, language, state="ask", heading=t("ack.title", language),
                 incident=incident, worker=worker, action=request.url.path)


@router.post("/a/{token}")
async def ack_press(request: Request, token: str, db: Db, settings: Settings) -> Response:
    """Acknowledge as the link's worker (once); say what happened."""
    client = request.client.host if request.client else ""
    try:
        claim, outcome = await use_ack_link(
            db, token, lifetime_s=settings.notify.ack_link_lifetime_s,
            source=f"from {client}" if client else "",
            on_acknowledged=_tell_the_others(NotificationContext.of(settings)))
    except AckLinkError as exc:
        language = _language(request)
        try:
            async with db.transaction() as tx:
                secret = await ack_secret(tx)
            claimed = check_token(token, secret=secret, lifetime_s=1e9)
            language = (await _worker(db, claimed.worker_id))[1]
        except AckLinkError:
            pass
        return _refused(request, exc.reason, language)
    _, language = await _worker(db, claim.worker_id)
    incident = await _incident(db, claim, settings.notify.timezone, language)
    by = incident["acknowledged_by"] if incident else "?"
    return _page(request, language, state=outcome.value, heading=t("ack.title", language),
                 incident=incident,
                 message=t(f"ack.result.{outcome.value}", language, by=by))
