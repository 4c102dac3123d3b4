"""API tokens in the dashboard (admins only): create (the token is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from server.domain import api_tokens, people
from server.domain.errors import InvalidChangeError, NotFoundError
from server.web.deps import Db, csrf_protect, require
from server.web.render import render
from server.web.users import Role, User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Admin = Annotated[User, Depends(require(Role.ADMIN))]


async def _page(request: Request, db: Db, user: User, *, created: str | None = None,
                error: str | None = None, status_code: int = 200) -> Response:
    response = render(request, "tokens.html", user, tokens=await api_tokens.list_tokens(db),
                      grids=await people.list_grids(db), scopes=list(api_tokens.Scope),
                      created=created, error=error or request.query_params.get("error"),
                      status_code=status_code)
    # The page that shows a new token must not stay in any cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/tokens")
async def tokens_page(request: Request, db: Db, user: Admin) -> Response:
    """Every API token: name, scopes, grid, created, last used, revoked."""
    return await _page(request, db, user)


@router.post("/tokens")
async def create_token(
    request: Request, db: Db, user: Admin, name: Annotated[str, Form(max_length=100)],
    grid_id: Annotated[str, Form(max_length=12)] = "",
    expires_days: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Create a token and show its text this once."""
    form = await request.form()
    try:
        token = api_tokens.ApiTokenIn(
            name=name, scopes=[api_tokens.Scope(str(s)) for s in form.getlist("scope")],
            grid_id=int(grid_id) if grid_id.strip() else None,
            expires_days=int(expires_days) if expires_days.strip() else None)
        _, text = await api_tokens.create_token(db, token, actor=user.username)
    except (ValidationError, ValueError, NotFoundError):
        return await _page(request, db, user, error="invalid", status_code=400)
    return await _page(request, db, user, created=text)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(db: Db, user: Admin, token_id: int) -> Response:
    """Revoke a token at once."""
    try:
        await api_tokens.revoke_token(db, token_id, actor=user.username)
    except (InvalidChangeError, NotFoundError):
        return RedirectResponse("/tokens?error=conflict", status_code=303)
    return RedirectResponse("/tokens", status_code=303)
