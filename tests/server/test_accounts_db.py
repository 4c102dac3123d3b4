"""Login throttling and user management on both databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doorwatch.cli import app
from ground.timeutil import utcnow
from server.admin import add_worker
from server.db.base import Database
from server.domain.people import WorkerUpdate, update_worker
from server.web import accounts
from server.web.sessions import session_user, start_session
from server.web.throttle import (
    Backoff,
    attempt_failed,
    attempt_succeeded,
    begin_attempt,
    locked_now,
    login_counts,
)
from server.web.users import UserError, create_user, get_user, get_user_by_name
from tests.server.test_cli import Cli

POLICY = Backoff(free_attempts=2, source_free_attempts=3)


async def test_throttle_counts_per_user_and_source_and_per_source(db: Database) -> None:
    now = utcnow()
    for _ in range(2):
        assert await begin_attempt(db, "Ann", "10.0.0.1", POLICY, now) == 0
        await attempt_failed(db, "Ann", "10.0.0.1")
    assert await begin_attempt(db, "ann", "10.0.0.1", POLICY, now) > 0  # names are caseless
    assert await begin_attempt(db, "ann", "10.0.0.2", POLICY, now) == 0  # elsewhere: free
    await attempt_succeeded(db, "ann", "10.0.0.2", POLICY)
    assert await begin_attempt(db, "bob", "10.0.0.1", POLICY, now) == 0  # 3rd of the source
    assert await begin_attempt(db, "carl", "10.0.0.1", POLICY, now) > 0  # source spent
    assert await locked_now(db, now) == {"user_source": 1.0, "source": 1.0}
    # A wait ends, and an hour later the old failures no longer count.
    later = now + timedelta(hours=2)
    assert await begin_attempt(db, "ann", "10.0.0.1", POLICY, later) == 0
    assert await login_counts(db) == {"success": 1.0, "failed": 2.0, "throttled": 2.0}


async def test_disable_reset_delete_end_sessions_and_guard_the_last_admin(db: Database) -> None:
    admin = await create_user(db, "root", "a long password", "admin")
    worker_id = await add_worker(db, "王网格", apprise_urls=[])
    user_id = await create_user(db, "wang", "a long password", "worker", worker_id=worker_id)
    user = await get_user(db, user_id)
    assert user is not None
    token = await start_session(db, user, "10.0.0.1")
    assert await accounts.set_active(db, user_id, False, actor="t") == 1
    assert await session_user(db, token) is None
    assert await get_user_by_name(db, "wang") is None
    await accounts.set_active(db, user_id, True, actor="t")
    assert await session_user(db, token) is None  # ended, not just hidden

    token = await start_session(db, user, "10.0.0.1")
    await update_worker(db, worker_id, WorkerUpdate(active=False), actor="t")
    assert await get_user(db, user_id) is None
    await update_worker(db, worker_id, WorkerUpdate(active=True), actor="t")
    assert await session_user(db, token) is None

    token = await start_session(db, user, "10.0.0.1")
    assert await accounts.reset_password(db, user_id, "another long one", actor="t") == 1
    assert await session_user(db, token) is None
    assert await accounts.delete_user(db, user_id, actor="t") == 0
    assert await accounts.find_user(db, "root") == await get_user(db, admin)
    for change in (accounts.set_active(db, admin, False, actor="t"),
                   accounts.delete_user(db, admin, actor="t")):
        with pytest.raises(UserError, match="last active admin"):
            await change


def test_odd_digits_in_cli_grid_and_csv_worker_are_clear_errors(tmp_path: Path) -> None:
    """"²" passes str.isdigit() but not int(): the import crashed on it; now the row is
    reported like any unknown worker."""
    cli = Cli(f"sqlite:///{tmp_path}/odd.db")
    assert "²" in cli("incidents", "list", "--grid", "²", ok=False)
    households = tmp_path / "households.csv"
    households.write_text("name,address,worker\n张三家,路 1,²\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["household", "import", str(households)], env=cli.env)
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "²" in result.stdout + result.stderr
