"""User management over the JSON API: what ``doorwatch user ...`` and the admin page do.

Same rules as the page: admins only (a user changes their own password),
each change audited, and disabling, resetting, deleting or changing a
password ends that user's sessions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import Response

from server.web import accounts
from server.web.api_models import ChangePasswordIn, PasswordIn
from server.web.deps import CurrentUser, Db, csrf_protect, csrf_token, require
from server.web.sessions import start_session
from server.web.throttle import attempt_failed, attempt_succeeded, begin_attempt, source_of
from server.web.users import Role, User, UserError

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(csrf_protect)])

Admin = Annotated[User, Depends(require(Role.ADMIN))]


def _refused(exc: UserError) -> HTTPException:
    if exc.field == "username":
        return HTTPException(404, str(exc))
    if exc.field in ("last_admin", "self"):
        return HTTPException(409, str(exc))
    return HTTPException(400, str(exc))


async def _target(db: Db, admin: User, user_id: int, *, not_self: bool = False) -> User:
    try:
        user = await accounts.find_user(db, user_id)
        if not_self and user.id == admin.id:
            raise UserError("use another admin account for this", field="self")
    except UserError as exc:
        raise _refused(exc) from None
    return user


@router.post("/users/{user_id}/disable", status_code=204, summary="Disable a user")
async def api_disable_user(db: Db, user: Admin, user_id: int) -> Response:
    """The user cannot log in; every session of theirs ends now."""
    target = await _target(db, user, user_id, not_self=True)
    try:
        await accounts.set_active(db, target.id, False, actor=user.username)
    except UserError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)


@router.post("/users/{user_id}/enable", status_code=204, summary="Enable a user")
async def api_enable_user(db: Db, user: Admin, user_id: int) -> Response:
    """Let a disabled user log in again."""
    target = await _target(db, user, user_id)
    await accounts.set_active(db, target.id, True, actor=user.username)
    return Response(status_code=204)


@router.post("/users/{user_id}/password", status_code=204, summary="Reset a user's password")
async def api_reset_password(db: Db, user: Admin, user_id: int, body: PasswordIn) -> Response:
    """Set a new password; every session of that user ends now."""
    target = await _target(db, user, user_id)
    try:
        await accounts.reset_password(db, target.id, body.password, actor=user.username)
    except UserError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)


@router.delete("/users/{user_id}", status_code=204, summary="Delete a user")
async def api_delete_user(db: Db, user: Admin, user_id: int) -> Response:
    """Delete a user (the audit log keeps the name); every session of theirs ends now."""
    target = await _target(db, user, user_id, not_self=True)
    try:
        await accounts.delete_user(db, target.id, actor=user.username)
    except UserError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)


@router.post("/session/password", summary="Change one's own password")
async def api_change_password(request: Request, db: Db, user: CurrentUser,
                              body: ChangePasswordIn) -> dict[str, str]:
    """Every session of the user ends; this client gets a fresh one (and a new CSRF token).

    The current password is checked under the login throttle.
    """
    source = source_of(request)
    policy = request.app.state.backoff
    wait = await begin_attempt(db, user.username, source, policy)
    if wait > 0:
        raise HTTPException(429, "too many attempts; try later",
                            headers={"Retry-After": str(int(wait) + 1)})
    try:
        await accounts.change_password(db, user, body.current, body.password)
    except UserError as exc:
        if exc.field == "current":
            await attempt_failed(db, user.username, source)
        else:
            await attempt_succeeded(db, user.username, source, policy)
        raise _refused(exc) from None
    await attempt_succeeded(db, user.username, source, policy)
    # A new session token (the old ones are gone); the CSRF token stays, so the
    # user's other open tabs keep working.
    request.session["sid"] = await start_session(db, user, source)
    return {"csrf_token": csrf_token(request)}
