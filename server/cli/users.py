"""``doorwatch user add|list|disable|enable|reset-password|delete``: dashboard users.

Thin shell over :mod:`server.web.users` and :mod:`server.web.accounts`:
disabling, resetting a password and deleting end that user's sessions at
once, and each change is audited with the operator as the actor.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    JsonOption,
    actor_name,
    cli_language,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database
    from server.web.users import User, UserError

__all__ = ["user_app"]

user_app = typer.Typer(help="Dashboard users (log-ins with roles): add, list, disable, enable, "
                       "reset a password, delete.", no_args_is_help=True)

UserArgument = Annotated[str, typer.Argument(help="Login name")]
PasswordStdinOption = Annotated[bool, typer.Option(
    help="Read the password from standard input instead of prompting")]


# The catalogue's explanation of a refused change, by the field the refusal names.
_REFUSALS = {
    "username": "web.users.error.username",
    "password": "web.users.error.password",
    "role": "web.users.error.role",
    "worker_id": "web.users.error.worker",
    "last_admin": "web.users.error.last_admin",
}


def _refused(exc: UserError, username: str, *, found: bool) -> NoReturn:
    """Explain a refusal in the operator's language (field in brackets) and exit 2."""
    from ground.i18n import t

    language = cli_language()
    if not found:
        message = t("cli.user.not_found", language, username=username)
    elif exc.field in _REFUSALS:
        message = t(_REFUSALS[exc.field], language)
    else:
        message = str(exc)
    typer.echo(f"error: [{exc.field}] {message}", err=True)
    raise typer.Exit(2)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def add_command(
    username: UserArgument,
    role: Annotated[str, typer.Option(help="admin, supervisor, worker or installer")] = "admin",
    config: ConfigOption = None,
    language: Annotated[str | None, typer.Option(help="zh_CN or en (default: the worker's)")]
    = None,
    worker_id: Annotated[int | None, typer.Option(help="Link to this worker (required for "
                                                  "role worker)")] = None,
    password_stdin: PasswordStdinOption = False,
    actor: ActorOption = None,
) -> None:
    """Create a dashboard user (the password is prompted for, never an argument)."""
    from ground.i18n import t
    from server.web.users import UserError, create_user

    password = _password(password_stdin)

    async def action(db: Database, _s: ServerSettings) -> int:
        try:
            return await create_user(db, username, password, role, language=language,
                                     worker_id=worker_id, actor=actor or "cli")
        except UserError as exc:
            _refused(exc, username, found=True)

    user_id = run_with_db(config, action)
    typer.echo(t("web.cli.user_added", language or cli_language(), username=username,
                 role=role, id=user_id))


@user_app.command("list")
def list_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List every user with role, language, linked worker and state (active or disabled)."""
    import json

    from ground.i18n import t
    from server.web.users import list_users

    async def action(db: Database, _s: ServerSettings) -> list[User]:
        return await list_users(db, include_inactive=True)

    users = run_with_db(config, action)
    language = cli_language()
    rows = [{"id": u.id, "username": u.username, "role": u.role.value, "language": u.language,
             "worker_id": u.worker_id, "active": u.active} for u in users]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    header = ["id", "username", "role", "language", "worker_id", "state"]
    table = [header] + [[str(r["id"]), str(r["username"]), str(r["role"]), str(r["language"]),
                         "" if r["worker_id"] is None else str(r["worker_id"]),
                         t("cli.user.active" if r["active"] else "cli.user.disabled", language)]
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for cells in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def _change(config: ConfigOption, username: str, key: str, change: str,
            actor: str | None, password: str = "") -> None:
    from ground.i18n import t
    from server.web import accounts
    from server.web.users import UserError

    async def action(db: Database, _s: ServerSettings) -> int:
        try:
            user = await accounts.find_user(db, username)
        except UserError as exc:
            _refused(exc, username, found=False)
        who = actor_name(actor)
        try:
            if change == "disable":
                return await accounts.set_active(db, user.id, False, actor=who)
            if change == "enable":
                return await accounts.set_active(db, user.id, True, actor=who)
            if change == "password":
                return await accounts.reset_password(db, user.id, password, actor=who)
            return await accounts.delete_user(db, user.id, actor=who)
        except UserError as exc:
            _refused(exc, username, found=True)

    ended = run_with_db(config, action)
    typer.echo(t(key, cli_language(), username=username, sessions=ended))


@user_app.command("disable")
def disable_command(username: UserArgument, config: ConfigOption = None,
                    actor: ActorOption = None) -> None:
    """Disable a user: they cannot log in, and every session of theirs ends now."""
    _change(config, username, "cli.user.disabled_done", "disable", actor)


@user_app.command("enable")
def enable_command(username: UserArgument, config: ConfigOption = None,
                   actor: ActorOption = None) -> None:
    """Let a disabled user log in again."""
    _change(config, username, "cli.user.enabled_done", "enable", actor)


@user_app.command("reset-password")
def reset_password_command(username: UserArgument, config: ConfigOption = None,
                           password_stdin: PasswordStdinOption = False,
                           actor: ActorOption = None) -> None:
    """Set a new password for a user; every session of theirs ends now."""
    _change(config, username, "cli.user.password_done", "password", actor,
            _password(password_stdin))


@user_app.command("delete")
def delete_command(
    username: UserArgument, config: ConfigOption = None, actor: ActorOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a user (the audit log keeps their name); every session of theirs ends now."""
    from ground.i18n import t

    if not yes and not typer.confirm(t("cli.user.confirm_delete", cli_language(),
                                       username=username)):
        raise typer.Exit(1)
    _change(config, username, "cli.user.deleted_done", "delete", actor)
