"""Notifications: a persisted outbox in the database, delivered through Apprise."""
