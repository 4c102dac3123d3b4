"""The FastAPI application: pages, JSON API, health and metrics, on the server's database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ground.i18n import t
from server.config import ServerSettings
from server.db.base import Database
from server.domain.errors import UnknownDeviceError
from server.web.deps import CsrfError, ForbiddenError, NotLoggedInError, wants_html
from server.web.render import language_of, render
from server.web.sessions import load_secret
from server.web.throttle import Backoff

__all__ = ["SESSION_COOKIE", "create_app"]

SESSION_COOKIE = "doorwatch_session"

# Pages load only our own files: no CDN, no inline script (the SVG charts are markup).
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"frame-ancestors 'none'; form-action 'self'"),
]


class _SecurityHeaders:
    """Pure ASGI middleware (streams such as SSE pass through untouched)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def create_app(
    db: Database, settings: ServerSettings, *, backoff: Backoff | None = None
) -> FastAPI:
    """Build the dashboard and API on ``db`` (the server's handle, not a new connection)."""
    from server.web import (
        routes_ack,
        routes_admin,
        routes_aim,
        routes_api,
        routes_api_users,
        routes_auth,
        routes_coverage,
        routes_evidence,
        routes_pages,
        routes_people,
        routes_reports,
        routes_roster,
        routes_share,
        routes_silences,
        routes_system,
        routes_tokens,
        routes_users,
    )

    app = FastAPI(
        title="doorwatch",
        description="Incidents, households, devices and administration of doorwatch.",
        version="1",
        # The schema is served behind login by routes_api; the Swagger UI would load
        # its script from a CDN, which neither the CSP nor an offline office allows.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.backoff = backoff or Backoff()
    app.state.stopping = asyncio.Event()  # set on shutdown: live streams end
    app.add_middleware(
        SessionMiddleware,
        secret_key=await load_secret(db),
        session_cookie=SESSION_COOKIE,
        max_age=12 * 3600,
        same_site="lax",
        https_only=settings.http.cookie_secure,
    )
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    for router in (routes_system.router, routes_auth.router, routes_pages.router,
                   routes_people.router, routes_admin.router, routes_users.router,
                   routes_aim.router,
                   routes_api.login_router, routes_api.router, routes_api_users.router,
                   routes_ack.router, routes_roster.router,
                   routes_silences.router, routes_share.router,
                   routes_tokens.router, routes_evidence.router, routes_coverage.router,
                   routes_reports.router):
        app.include_router(router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    from server.web.routes_share import TokenRefusedError, refused

    @app.exception_handler(TokenRefusedError)
    async def token_refused(_request: Request, exc: TokenRefusedError) -> Response:
        return refused(exc)

    @app.exception_handler(NotLoggedInError)
    async def not_logged_in(request: Request, _exc: NotLoggedInError) -> Response:
        if wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        return JSONResponse({"detail": "login required"}, status_code=401)

    @app.exception_handler(ForbiddenError)
    async def forbidden(request: Request, _exc: ForbiddenError) -> Response:
        return _error(request, 403, "web.error.forbidden")

    @app.exception_handler(CsrfError)
    async def csrf_failed(request: Request, _exc: CsrfError) -> Response:
        return _error(request, 403, "web.error.csrf")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = {404: "web.error.not_found", 400: "web.error.bad_request",
               409: "web.error.conflict"}.get(exc.status_code, "web.error.bad_request")
        if not wants_html(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=exc.headers)
        return _error(request, exc.status_code, key, detail=str(exc.detail or ""))

    @app.exception_handler(UnknownDeviceError)
    async def unknown_device(request: Request, exc: UnknownDeviceError) -> Response:
        # Never provisioned, or mistyped: the same words on every page and API call.
        return _error(request, 404, "web.error.device_unknown", detail=exc.device_id)

    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, _exc: OverflowError) -> Response:
        # An id in a path or body beyond the database's 64-bit integers: the driver
        # refuses to bind it. It names nothing that exists, so it is a bad request.
        return _error(request, 400, "web.error.bad_request")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if not wants_html(request):
            return JSONResponse({"detail": _json_errors(exc)}, status_code=422)
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) for e in exc.errors())
        return _error(request, 422, "web.error.bad_request", detail=fields)


def _json_errors(exc: RequestValidationError) -> list[Any]:
    """The errors as plain JSON.

    Pydantic's error dicts hold Python objects JSONResponse cannot encode: a
    validator's ``ctx`` holds the exception itself, and ``input`` is the raw
    body as bytes when it was not sent as JSON (``text/plain`` or no content
    type). Both turned an unauthenticated 422 into a 500. The input is not
    echoed back at all: on ``/api/login`` it is the password.
    """
    return [_plain({k: v for k, v in e.items() if k != "input"}) for e in exc.errors()]


def _plain(value: Any) -> Any:
    """``value`` with everything that is not JSON already turned into text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _error(request: Request, status: int, key: str, detail: str = "") -> Response:
    user = getattr(request.state, "user", None)
    if not wants_html(request):
        return JSONResponse({"detail": t(key, "en")}, status_code=status)
    message = t(key, language_of(request, user))
    return render(request, "error.html", user, status_code=status, message=message,
                  detail=detail, status=status)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
