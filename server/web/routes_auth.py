"""Login, logout and the language switch (forms with CSRF tokens)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from ground.i18n import LANGUAGES, normalize_language, t
from ground.logs import get_logger
from server.web.deps import (
    CurrentUser,
    Db,
    NotLoggedInError,
    csrf_protect,
    csrf_token,
    current_user,
)
from server.web.render import language_of, render
from server.web.sessions import end_session, start_session
from server.web.throttle import attempt_failed, attempt_succeeded, begin_attempt, source_of
from server.web.users import Role, User, get_user_by_name, set_language, verify_password

__all__ = ["LoginOutcome", "attempt_login", "router", "safe_next"]

log = get_logger(__name__)

router = APIRouter(tags=["auth"])


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go to after login; anything else (``//evil``, URLs) becomes ``default``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


def home_for(user: User) -> str:
    """Where a user lands after login."""
    return "/devices" if user.role is Role.INSTALLER else "/incidents"


@router.get("/login", include_in_schema=False)
async def login_form(request: Request, next: str = "/") -> Response:
    """The login form."""
    return render(request, "login.html", None, next=safe_next(next), error=None)


@dataclass(slots=True)
class LoginOutcome:
    """What a login attempt led to."""

    user: User | None = None
    error_key: str | None = None
    wait_s: float = 0.0
    status: int = 200


async def attempt_login(
    request: Request, db: Db, username: str, password: str
) -> LoginOutcome:
    """Check a password, throttled per user name and source; on success start a session.

    Unknown (or disabled) users go through the same steps as a wrong password,
    including one argon2 verification against a dummy hash, so the answer's
    timing does not tell which user names exist.
    """
    source = source_of(request)
    policy = request.app.state.backoff
    wait = await begin_attempt(db, username, source, policy)
    if wait > 0:
        log.warning("login throttled", extra={"username": username[:64], "source": source,
                                               "wait_s": round(wait)})
        return LoginOutcome(error_key="web.login.locked", wait_s=wait, status=429)
    found = await get_user_by_name(db, username)
    # argon2 takes tens of milliseconds of CPU: on a thread, so other requests keep going.
    ok = await asyncio.to_thread(verify_password, found[1] if found else None, password)
    if found is None or not ok:
        await attempt_failed(db, username, source)
        log.warning("login failed", extra={"username": username[:64], "source": source})
        return LoginOutcome(error_key="web.login.failed", status=401)
    user = found[0]
    await attempt_succeeded(db, username, source, policy)
    # A fresh session token and CSRF token on login (no session fixation).
    request.session.clear()
    request.session["sid"] = await start_session(db, user, source)
    csrf_token(request)
    log.info("login", extra={"username": user.username, "role": user.role.value,
                             "source": source})
    return LoginOutcome(user=user)


@router.post("/login", include_in_schema=False, dependencies=[Depends(csrf_protect)])
async def login(
    request: Request, db: Db, username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=512)], next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password (with backoff after failures) and start a session."""
    outcome = await attempt_login(request, db, username, password)
    if outcome.user is None:
        assert outcome.error_key is not None
        lang = language_of(request, None)
        error = t(outcome.error_key, lang, seconds=math.ceil(outcome.wait_s))
        return render(request, "login.html", None, status_code=outcome.status,
                      next=safe_next(next), error=error, username=username)
    target = safe_next(next, home_for(outcome.user))
    return RedirectResponse(target if target != "/" else home_for(outcome.user), status_code=303)


@router.post("/logout", include_in_schema=False, dependencies=[Depends(csrf_protect)])
async def logout(request: Request, db: Db, user: CurrentUser) -> Response:
    """End the session everywhere and go back to the login form."""
    token = request.session.get("sid")
    if isinstance(token, str):
        await end_session(db, token, user)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.post("/language", include_in_schema=False, dependencies=[Depends(csrf_protect)])
async def switch_language(
    request: Request, db: Db, lang: Annotated[str, Form()],
    back: Annotated[str, Form()] = "/",
) -> Response:
    """Switch the page language (stored in the user's profile when logged in)."""
    chosen = normalize_language(lang) if lang in LANGUAGES else normalize_language(None)
    request.session["lang"] = chosen
    try:
        user = await current_user(request)
    except NotLoggedInError:  # the switch on the login page, before anyone logged in
        user = None
    if user is not None and user.language != chosen:
        await set_language(db, user, chosen)
    return RedirectResponse(safe_next(back), status_code=303)


@router.get("/", include_in_schema=False)
async def home(user: CurrentUser) -> Response:
    """Send each role to its main page."""
    return RedirectResponse(home_for(user), status_code=303)
