"""``doorwatch user ...``: dashboard users, so an operator can create the first admin."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["user_app"]

user_app = typer.Typer(help="Dashboard users (log-ins with roles).", no_args_is_help=True)


@user_app.command("add")
def add_command(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option(help="admin, supervisor, worker or installer")] = "admin",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Server TOML file")] = None,
    language: Annotated[str | None, typer.Option(help="zh_CN or en (default: the worker's)")]
    = None,
    worker_id: Annotated[int | None, typer.Option(help="Link to this worker (required for "
                                                  "role worker)")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input "
                                                 "instead of prompting")] = False,
) -> None:
    """Create a dashboard user (the password is prompted for, never an argument)."""
    from ground.errors import DoorwatchError
    from ground.i18n import t
    from server.config import load_server_settings
    from server.db.connect import open_database
    from server.web.users import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def main() -> int:
        settings = load_server_settings(config)
        db = await open_database(settings.database_url)
        try:
            return await create_user(db, username, password, role, language=language,
                                     worker_id=worker_id, actor="cli")
        finally:
            await db.close()

    try:
        user_id = asyncio.run(main())
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(t("web.cli.user_added", language, username=username, role=role, id=user_id))
