"""Managing dashboard users: disable, enable, reset or change a password, delete.

Each change is one transaction with its audit record, and each one that
takes access away or changes a password ends every session of that user at
once (sessions live in the database, so on every server instance). The CLI
(``doorwatch user ...``), the admin page and the API all call these.
"""

from __future__ import annotations

import asyncio

from ground.timeutil import now_ts
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.web.sessions import end_user_sessions
from server.web.users import (
    Role,
    User,
    UserError,
    check_password,
    hash_password,
    verify_password,
)

__all__ = [
    "change_password",
    "delete_user",
    "find_user",
    "reset_password",
    "set_active",
]


async def find_user(db: Database | Transaction, name_or_id: str | int) -> User:
    """A user by id or user name, active or not (:class:`UserError` if there is none)."""
    if isinstance(name_or_id, int):
        row = await db.fetch_one("SELECT * FROM users WHERE id = ?", (name_or_id,))
    else:
        row = await db.fetch_one("SELECT * FROM users WHERE username = ?", (name_or_id.strip(),))
    if row is None:
        raise UserError(f"no user {name_or_id!r}", field="username")
    return User.from_row(row)


async def _other_active_admins(tx: Transaction, user: User) -> int:
    row = await tx.fetch_one(
        "SELECT COUNT(*) AS n FROM users WHERE role = ? AND active = 1 AND id != ?",
        (Role.ADMIN.value, user.id))
    return int(row["n"]) if row else 0


async def _locked_row(tx: Transaction, user_id: int) -> Row:
    row = await tx.fetch_one("SELECT * FROM users WHERE id = ?", (user_id,))
    if row is None:
        raise UserError(f"no user {user_id}", field="username")
    return row


async def set_active(db: Database, user_id: int, active: bool, *, actor: str) -> int:
    """Enable or disable a user (audited); disabling ends their sessions. Return sessions ended.

    The last active admin cannot be disabled: nobody could manage users any more.
    """
    async with db.transaction() as tx:
        user = User.from_row(await _locked_row(tx, user_id))
        if not active and user.role is Role.ADMIN and not await _other_active_admins(tx, user):
            raise UserError("the last active admin cannot be disabled", field="last_admin")
        await tx.execute("UPDATE users SET active = ?, updated_at = ? WHERE id = ?",
                         (int(active), now_ts(), user_id))
        ended = 0 if active else await end_user_sessions(tx, user_id)
        await audit(tx, actor, "user.enable" if active else "user.disable", f"user:{user_id}",
                    user.username + (f" sessions_ended={ended}" if ended else ""))
    return ended


async def reset_password(db: Database, user_id: int, password: str, *, actor: str) -> int:
    """Set a new password for a user (an admin's reset); end their sessions; return how many."""
    check_password(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as tx:
        user = User.from_row(await _locked_row(tx, user_id))
        await tx.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                         (password_hash, now_ts(), user_id))
        ended = await end_user_sessions(tx, user_id)
        await audit(tx, actor, "user.reset_password", f"user:{user_id}",
                    f"{user.username} sessions_ended={ended}")
    return ended


async def change_password(db: Database, user: User, current: str, new: str) -> int:
    """A user changes their own password, proving the current one; end all their sessions.

    Raises :class:`UserError` on ``current`` (wrong) or ``password`` (too short).
    The caller starts a fresh session for the browser that made the change.
    """
    row = await db.fetch_one("SELECT password_hash FROM users WHERE id = ?", (user.id,))
    stored = str(row["password_hash"]) if row else None
    if not await asyncio.to_thread(verify_password, stored, current):
        raise UserError("the current password is wrong", field="current")
    check_password(new)
    if new == current:
        raise UserError("the new password is the current one", field="password")
    password_hash = await asyncio.to_thread(hash_password, new)
    async with db.transaction() as tx:
        await tx.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                         (password_hash, now_ts(), user.id))
        ended = await end_user_sessions(tx, user.id)
        await audit(tx, user.username, "user.change_password", f"user:{user.id}",
                    f"sessions_ended={ended}")
    return ended


async def delete_user(db: Database, user_id: int, *, actor: str) -> int:
    """Delete a user and end their sessions (audited; the audit trail keeps the name).

    The last active admin cannot be deleted. Return the sessions ended.
    """
    async with db.transaction() as tx:
        user = User.from_row(await _locked_row(tx, user_id))
        if user.role is Role.ADMIN and user.active and not await _other_active_admins(tx, user):
            raise UserError("the last active admin cannot be deleted", field="last_admin")
        ended = await end_user_sessions(tx, user_id)
        await tx.execute("DELETE FROM users WHERE id = ?", (user_id,))
        await audit(tx, actor, "user.delete", f"user:{user_id}",
                    f"{user.username} ({user.role.value}) sessions_ended={ended}")
    return ended
