"""Request dependencies: the database, the logged-in user, role checks, CSRF."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from server.config import ServerSettings
from server.db.base import Database
from server.web.sessions import session_user
from server.web.users import Role, User

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "CsrfError",
    "CurrentUser",
    "Db",
    "ForbiddenError",
    "NotLoggedInError",
    "Settings",
    "csrf_protect",
    "csrf_token",
    "get_db",
    "get_settings",
    "require",
    "wants_html",
]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotLoggedInError(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class ForbiddenError(Exception):
    """Logged in, but this role (or grid) may not do this: 403."""


class CsrfError(Exception):
    """An unsafe request without the session's CSRF token: 403."""


# The dependencies are coroutines, trivial as they are: FastAPI runs a plain function on
# its thread pool, a round trip that waits for the event loop, which during a backlog
# drain is busy validating batches (bench/NOTES.md, "Dashboard reads during a drain,
# diagnosed").


async def get_db(request: Request) -> Database:
    """The server's database handle."""
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> ServerSettings:
    """The server's settings."""
    settings: ServerSettings = request.app.state.settings
    return settings


Db = Annotated[Database, Depends(get_db)]
Settings = Annotated[ServerSettings, Depends(get_settings)]


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser page (not the JSON API)."""
    return not request.url.path.startswith("/api/")


def csrf_token(request: Request) -> str:
    """This browser session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Refuse an unsafe request whose form field or header lacks the session's token."""
    if request.method in _SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not secrets.compare_digest(expected, sent):
        raise CsrfError


async def current_user(request: Request) -> User:
    """The logged-in user; raises :class:`NotLoggedInError` otherwise."""
    cached = getattr(request.state, "user", None)
    if isinstance(cached, User):
        return cached
    token = request.session.get("sid")
    user = await session_user(await get_db(request), token if isinstance(token, str) else None)
    if user is None:
        raise NotLoggedInError
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require(*roles: Role) -> Callable[[Request], Awaitable[User]]:
    """Dependency: the logged-in user, who must have one of ``roles``."""
    allowed = frozenset(roles)

    async def check(request: Request) -> User:
        user = await current_user(request)
        if user.role not in allowed:
            raise ForbiddenError
        return user

    return check


# Who may do what: grouped here so a reviewer sees the whole policy at once.
ANYONE = tuple(Role)
OVERSEERS = (Role.ADMIN, Role.SUPERVISOR)
CASEWORK = (Role.ADMIN, Role.SUPERVISOR, Role.WORKER)
DEVICE_STAFF = (Role.ADMIN, Role.SUPERVISOR, Role.INSTALLER)
