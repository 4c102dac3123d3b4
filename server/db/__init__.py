"""Database access: one interface (``base``), SQLite and PostgreSQL backends, migrations.

:mod:`server.db.connect` opens one by URL.
"""
