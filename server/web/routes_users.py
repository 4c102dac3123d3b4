"""User management pages: the admin's user list and actions, everyone's change-password page.

Every action that takes access away or changes a password ends that user's
sessions (see :mod:`server.web.accounts`); each is audited. Errors re-render
the page with a 4xx status and the message from the catalogue.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from server.web import accounts
from server.web.deps import CurrentUser, Db, csrf_protect, csrf_token, require
from server.web.forms import parse_id
from server.web.render import render
from server.web.sessions import start_session
from server.web.throttle import attempt_failed, attempt_succeeded, begin_attempt, source_of
from server.web.users import Role, User, UserError, create_user, list_users

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Admin = Annotated[User, Depends(require(Role.ADMIN))]

# Which catalogue message explains a refused change, by the field it names.
_ERROR_KEYS = {
    "username": "web.users.error.username",
    "password": "web.users.error.password",
    "role": "web.users.error.role",
    "worker_id": "web.users.error.worker",
    "last_admin": "web.users.error.last_admin",
    "self": "web.users.error.self",
    "current": "web.account.error.current",
    "confirm": "web.users.error.confirm",
}


async def _users_page(request: Request, db: Db, user: User, *, error: UserError | None = None,
                      status: int = 200, notice: str | None = None) -> Response:
    workers = await db.fetch_all("SELECT id, name FROM workers ORDER BY name")
    return render(request, "users.html", user, status_code=status,
                  users=await list_users(db, include_inactive=True), workers=workers,
                  roles=list(Role), error_key=_ERROR_KEYS.get(error.field) if error else None,
                  notice=notice)


@router.get("/users")
async def users_page(request: Request, db: Db, user: Admin) -> Response:
    """Every dashboard user with their state, the actions on each, and a form to add one."""
    notice = request.query_params.get("done")
    return await _users_page(request, db, user,
                             notice=notice if notice in _NOTICES else None)


_NOTICES = frozenset({"added", "disabled", "enabled", "password", "deleted"})


@router.post("/users")
async def add_user(
    request: Request, db: Db, user: Admin, username: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=512)], role: Annotated[str, Form(max_length=32)],
    language: Annotated[str, Form(max_length=16)] = "zh_CN",
    worker_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Create a user (admin only)."""
    try:
        worker = _worker_id(worker_id)
        await create_user(db, username, password, role, language=language, worker_id=worker,
                          actor=user.username)
    except UserError as exc:
        return await _users_page(request, db, user, error=exc, status=400)
    return RedirectResponse("/users?done=added", status_code=303)


def _worker_id(value: str) -> int | None:
    if not value.strip():
        return None
    try:
        return parse_id(value, "worker_id")
    except HTTPException:
        raise UserError("not a worker id", field="worker_id") from None


async def _act(request: Request, db: Db, admin: User, user_id: int, done: str,
               action: str, password: str = "") -> Response:
    try:
        target = await accounts.find_user(db, user_id)
        if target.id == admin.id and action in ("disable", "delete"):
            raise UserError("use another admin account for this", field="self")
        if action == "disable":
            await accounts.set_active(db, target.id, False, actor=admin.username)
        elif action == "enable":
            await accounts.set_active(db, target.id, True, actor=admin.username)
        elif action == "password":
            await accounts.reset_password(db, target.id, password, actor=admin.username)
        else:
            await accounts.delete_user(db, target.id, actor=admin.username)
    except UserError as exc:
        status = 404 if exc.field == "username" else 400
        return await _users_page(request, db, admin, error=exc, status=status)
    return RedirectResponse(f"/users?done={done}", status_code=303)


@router.post("/users/{user_id}/disable")
async def disable_user(request: Request, db: Db, user: Admin, user_id: int) -> Response:
    """Disable a user: every session of theirs ends now."""
    return await _act(request, db, user, user_id, "disabled", "disable")


@router.post("/users/{user_id}/enable")
async def enable_user(request: Request, db: Db, user: Admin, user_id: int) -> Response:
    """Let a disabled user log in again."""
    return await _act(request, db, user, user_id, "enabled", "enable")


@router.post("/users/{user_id}/password")
async def reset_user_password(
    request: Request, db: Db, user: Admin, user_id: int,
    password: Annotated[str, Form(max_length=512)],
) -> Response:
    """Set a new password for a user (who forgot theirs); their sessions end."""
    return await _act(request, db, user, user_id, "password", "password", password)


@router.post("/users/{user_id}/delete")
async def delete_user(
    request: Request, db: Db, user: Admin, user_id: int,
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Delete a user (the box "I am sure" must be ticked); their sessions end."""
    if confirm != "yes":
        return await _users_page(request, db, user, status=400,
                                 error=UserError("tick the box", field="confirm"))
    return await _act(request, db, user, user_id, "deleted", "delete")


@router.get("/account/password")
async def password_page(request: Request, user: CurrentUser) -> Response:
    """The form to change one's own password."""
    done = request.query_params.get("done") == "1"
    return render(request, "password.html", user, error_key=None, done=done)


@router.post("/account/password")
async def change_password(
    request: Request, db: Db, user: CurrentUser,
    current: Annotated[str, Form(max_length=512)], password: Annotated[str, Form(max_length=512)],
    repeat: Annotated[str, Form(max_length=512)],
) -> Response:
    """Change one's own password: every session ends, this browser gets a fresh one.

    The current password is checked under the same throttle as a login: a
    stolen session must not become a way to guess it.
    """
    source = source_of(request)
    policy = request.app.state.backoff
    if await begin_attempt(db, user.username, source, policy) > 0:
        return render(request, "password.html", user, status_code=429,
                      error_key="web.account.error.throttled", done=False)
    try:
        if password != repeat:
            raise UserError("the two new passwords differ", field="repeat")
        await accounts.change_password(db, user, current, password)
    except UserError as exc:
        if exc.field == "current":
            await attempt_failed(db, user.username, source)
        else:
            await attempt_succeeded(db, user.username, source, policy)
        key = "web.account.error.repeat" if exc.field == "repeat" else _ERROR_KEYS[exc.field]
        return render(request, "password.html", user, status_code=400, error_key=key,
                      done=False)
    await attempt_succeeded(db, user.username, source, policy)
    # A new session token (the old ones are gone); the CSRF token stays, so the
    # user's other open tabs keep working.
    request.session["sid"] = await start_session(db, user, source_of(request))
    csrf_token(request)
    return RedirectResponse("/account/password?done=1", status_code=303)
