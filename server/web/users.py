"""Dashboard users: roles, argon2 password hashes, profile language.

A user is who logs in; a grid worker's or supervisor's user is linked to
their row in ``workers``, which decides which households they may see.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ground.errors import DoorwatchError
from ground.i18n import normalize_language
from ground.timeutil import now_ts
from server.db.base import Database, Params, Row
from server.domain.audit import audit

__all__ = [
    "Role",
    "User",
    "UserError",
    "check_password",
    "create_user",
    "get_user",
    "get_user_by_name",
    "get_user_with_id_from",
    "hash_password",
    "list_users",
    "set_language",
    "verify_password",
]

# A user may act only while both the user and the worker it is linked to (if
# any) are active: a worker marked inactive loses the dashboard at once.
_ACTIVE = ("FROM users u LEFT JOIN workers w ON w.id = u.worker_id "
           "WHERE u.active = 1 AND (u.worker_id IS NULL OR w.active = 1)")

_HASHER = PasswordHasher()
# Verifying against this when the user does not exist costs the same time as a
# real check, so response times do not reveal which user names exist.
_DUMMY_HASH = _HASHER.hash("doorwatch-no-such-user")
MIN_PASSWORD_LENGTH = 10


class Role(StrEnum):
    """What a user may do (see DESIGN.md, "Users")."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    WORKER = "worker"
    INSTALLER = "installer"


class UserError(DoorwatchError, ValueError):
    """A user could not be created or changed; names the field at fault."""

    def __init__(self, message: str, *, field: str):
        self.field = field
        super().__init__(f"[{field}]: {message}")


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard user as the web layer sees it (never the password hash)."""

    id: int
    username: str
    role: Role
    language: str
    worker_id: int | None
    active: bool = True

    @classmethod
    def from_row(cls, row: Row) -> User:
        """Build from a ``users`` row."""
        worker = row["worker_id"]
        return cls(id=int(row["id"]), username=str(row["username"]), role=Role(row["role"]),
                   language=str(row["language"]),
                   worker_id=int(worker) if worker is not None else None,
                   active=bool(row["active"]))

    @property
    def sees_all_households(self) -> bool:
        """Admins and supervisors see every grid; workers only their own."""
        return self.role in (Role.ADMIN, Role.SUPERVISOR)


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (argon2-cffi's recommended parameters)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``stored_hash``; with ``None`` (no such user) check a dummy.

    Callers must call this for unknown users too, so that both take one
    argon2 verification and the time does not tell which names exist. It is
    CPU-bound for tens of milliseconds: run it on a thread from async code.
    """
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def create_user(
    db: Database, username: str, password: str, role: Role | str, *,
    language: str | None = None, worker_id: int | None = None, actor: str = "admin",
) -> int:
    """Create a user; return the id. Raises :class:`UserError` naming the bad field."""
    name = username.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise UserError("must be 1-64 characters without spaces", field="username")
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"must be one of {', '.join(r.value for r in Role)}",
                        field="role") from None
    check_password(password)
    if role is Role.WORKER and worker_id is None:
        raise UserError("a grid worker's user must be linked to a worker", field="worker_id")
    password_hash = await asyncio.to_thread(hash_password, password)
    async with db.transaction() as tx:
        if await tx.fetch_one("SELECT id FROM users WHERE username = ?", (name,)):
            raise UserError(f"user {name!r} already exists", field="username")
        if worker_id is not None:
            worker = await tx.fetch_one("SELECT language FROM workers WHERE id = ?", (worker_id,))
            if worker is None:
                raise UserError(f"no worker with id {worker_id}", field="worker_id")
            language = language or str(worker["language"])
        now = now_ts()
        row = await tx.fetch_one(
            "INSERT INTO users (username, password_hash, role, language, worker_id, active, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?) RETURNING id",
            (name, password_hash, role.value, normalize_language(language), worker_id, now, now),
        )
        assert row is not None
        await audit(tx, actor, "user.add", f"user:{row['id']}", f"{name} ({role.value})")
        return int(row["id"])


def check_password(password: str) -> None:
    """Refuse a password too short to be one (:class:`UserError` on ``password``)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password")


async def get_user(db: Database, user_id: int) -> User | None:
    """The user with ``user_id`` if they may log in (user and linked worker active)."""
    row = await db.fetch_one(f"SELECT u.* {_ACTIVE} AND u.id = ?", (user_id,))
    return User.from_row(row) if row else None


async def get_user_with_id_from(db: Database, id_select: str, params: Params) -> User | None:
    """The user whose id the one-column query ``id_select`` gives, if they may log in.

    One read where reading the id first and then :func:`get_user` would be two: a
    session's user is looked up on every request, and during a backlog drain each
    read waits for the busy event loop (bench/NOTES.md).
    """
    row = await db.fetch_one(f"SELECT u.* {_ACTIVE} AND u.id = ({id_select})", params)
    return User.from_row(row) if row else None


async def get_user_by_name(db: Database, username: str) -> tuple[User, str] | None:
    """The user named ``username`` who may log in, and their password hash."""
    row = await db.fetch_one(f"SELECT u.* {_ACTIVE} AND u.username = ?",
                             (username.strip(),))
    return (User.from_row(row), str(row["password_hash"])) if row else None


async def list_users(db: Database, *, include_inactive: bool = False) -> list[User]:
    """Users by name: those who may log in, or every one with ``include_inactive``."""
    if include_inactive:
        rows = await db.fetch_all("SELECT * FROM users ORDER BY username")
    else:
        rows = await db.fetch_all(f"SELECT u.* {_ACTIVE} ORDER BY u.username")
    return [User.from_row(r) for r in rows]


async def set_language(db: Database, user: User, language: str) -> str:
    """Store ``user``'s preferred language (audited); return the normalized value."""
    value = normalize_language(language)
    async with db.transaction() as tx:
        await tx.execute("UPDATE users SET language = ?, updated_at = ? WHERE id = ?",
                         (value, now_ts(), user.id))
        await audit(tx, user.username, "user.language", f"user:{user.id}", value)
    return value
