"""Which households a user may see: the one place grid scoping is decided.

Admins and supervisors see every household; a grid worker sees only the
households of their grid; installers see no household data at all.
"""

from __future__ import annotations

from server.web.users import Role, User

__all__ = ["household_scope"]


def household_scope(user: User, alias: str = "h") -> tuple[str, list[object]]:
    """An SQL condition on households ``alias`` (and its parameters) limiting it to ``user``.

    A worker sees the households of their grid (``workers.grid_id``) and any
    household assigned to them personally; the condition is built only here
    so grid scoping is decided in one place.
    """
    if user.sees_all_households:
        return "1 = 1", []
    if user.role is Role.WORKER and user.worker_id is not None:
        return (f"({alias}.grid_id = (SELECT gw.grid_id FROM workers gw WHERE gw.id = ?) "  # noqa: S608 - alias is ours
                f"OR {alias}.worker_id = ?)", [user.worker_id, user.worker_id])
    return "1 = 0", []
