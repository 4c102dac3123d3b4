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
* :mod:`server.domain.rules` - what an ingested event means (breach, visitor, overdue return)
* :mod:`server.domain.incident_opening` - incident kinds and states, opening and folding
* :mod:`server.domain.audit` - writing the audit log inside the caller's transaction
* :mod:`server.domain.notification_outbox` - notifications queued with the change that causes them
* :mod:`server.domain.provisioning` - device credentials, broker reload, bundles

Every function takes the database first and an ``actor`` for anything it
changes; every change is written with its audit record in one transaction.
Errors (:mod:`server.domain.errors`): :class:`NotFoundError` (LookupError),
:class:`InvalidChangeError` (ValueError, with a stable ``reason`` key),
pydantic ``ValidationError`` for bad input models.
"""
