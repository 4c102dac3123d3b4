"""The server's domain: one async API over a :class:`~server.db.Database` for the CLI and the web.

Modules:

* :mod:`server.domain.people` - grid workers, supervisors, grids
* :mod:`server.domain.households` - households, quarantine periods, ending early
* :mod:`server.domain.devices` - devices, assignment history, replacement
* :mod:`server.domain.leaves` - permitted leaves
* :mod:`server.domain.followups` - daily follow-ups
* :mod:`server.domain.incidents` - incident lifecycle, listing, CSV export
* :mod:`server.domain.audit_log` - reading the audit log and warnings
* :mod:`server.domain.csv_import` - households/workers from grid offices' CSV files

Every function takes the database first and an ``actor`` for anything it
changes; every change is written with its audit record in one transaction.
Errors: :class:`NotFoundError` (LookupError), :class:`InvalidChangeError`
(ValueError, with a stable ``reason`` key), pydantic ``ValidationError`` for
bad input models.
"""
