"""Schema migrations, written once for SQLite and PostgreSQL.

Each migration is a module ``mNNNN_name.py`` in this package with a list
``STATEMENTS``; they are applied in name order, each in its own transaction,
and recorded in ``schema_migrations``. Statements may use dialect tokens:
``{pk}`` (auto-increment integer primary key), ``{blob}`` (binary data),
``{bigint}`` (64-bit integer), ``{event_key}`` (the 64-bit key of the
``event_id`` column's UUID, server/db/event_key.py). Times are ISO 8601 UTC text (see
``ground.timeutil``) so they compare the same on both databases.
Add new modules; never edit one that has shipped.
"""
