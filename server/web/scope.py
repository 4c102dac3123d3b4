"""Which households a user may see: the one place grid scoping is decided.

Admins and supervisors see every household; a grid worker sees only the
households of their grid; installers see no household data at all.
"""

from __future__ import annotations

from server.web.users import Role, User

__all__ = ["household_scope", "incident_scope"]


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


def incident_scope(user: User, incident: str = "i",
                   household: str = "h") -> tuple[str, list[object]]:
    """An SQL condition on incidents ``incident`` (joined to its households ``household``)
    limiting them to ``user``: the incident's household is in scope, or, for a grouped
    offline incident (server/domain/storms.py, filed under its first member's household),
    any member's household is."""
    scope, params = household_scope(user, household)
    if user.sees_all_households or scope == "1 = 0":
        return scope, params
    members, member_params = household_scope(user, "gh")
    return (f"({scope} OR EXISTS (SELECT 1 FROM incidents gm JOIN households gh "  # noqa: S608 - aliases are ours
            f"ON gh.id = gm.household_id WHERE gm.group_id = {incident}.id AND {members}))",
            [*params, *member_params])
