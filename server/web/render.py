"""Rendering pages: Jinja2 templates with the catalogue's text, local times, durations."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from ground.i18n import LANGUAGES, duration_text, label, normalize_language, t
from ground.timeutil import from_ts, utcnow
from server.web.deps import csrf_token
from server.web.users import User

__all__ = [
    "duration",
    "label",
    "language_of",
    "local_time",
    "render",
    "seconds_between",
    "templates",
]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def language_of(request: Request, user: User | None) -> str:
    """The page language: the session's choice, else the user's profile, else zh_CN."""
    chosen = request.session.get("lang")
    if isinstance(chosen, str):
        return normalize_language(chosen)
    return normalize_language(user.language if user else None)


def local_time(ts: str | None, zone: str, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored UTC time shown in the dashboard's time zone."""
    if not ts:
        return ""
    return from_ts(ts).astimezone(ZoneInfo(zone)).strftime(fmt)


def duration(seconds: float | None, language: str) -> str:
    """A short human duration (``3 min``, ``2 h 5 min``, ``1 d 3 h``); nothing when unknown."""
    return "" if seconds is None else duration_text(seconds, language)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (or to now when ``end`` is None)."""
    if not start:
        return None
    stop: datetime = from_ts(end) if end else utcnow()
    return (stop - from_ts(start)).total_seconds()


def _label_in(prefix: str, value: str | None, language: str) -> str:
    return label(prefix, value, language)


def render(
    request: Request, name: str, user: User | None, status_code: int = 200, **context: Any
) -> Response:
    """Render template ``name`` with the text, time and CSRF helpers every page uses."""
    language = language_of(request, user)
    zone: str = request.app.state.settings.notify.timezone
    context.update(
        user=user,
        lang=language,
        languages=LANGUAGES,
        _=partial(t, language=language),
        tr=partial(t, language=language),
        local=partial(local_time, zone=zone),
        dur=partial(duration, language=language),
        since=seconds_between,
        label=partial(_label_in, language=language),
        csrf=csrf_token(request),
        path=request.url.path,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)
