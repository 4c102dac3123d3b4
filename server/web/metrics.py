"""Prometheus metrics read from the database, so every server instance reports the same truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ground.timeutil import to_ts, utcnow
from server.db.base import Database
from server.web.metrics_rejected import rejected_by_device
from server.web.queries import HEARTBEAT_STALE_S
from server.web.throttle import locked_now, login_counts

__all__ = ["render_metrics"]

_QUERIES = {
    "events": "SELECT COUNT(*) AS n FROM events",
    # Counted apart from the rows, which the retention job deletes (server/ingest/rejections.py).
    "rejected": "SELECT COALESCE(SUM(total), 0) AS n FROM rejected_counts",
    "notify_failed": "SELECT COUNT(*) AS n FROM notifications WHERE state = 'failed'",
    "attempts_failed": "SELECT COUNT(*) AS n FROM notification_attempts WHERE ok = 0",
    "devices": "SELECT COUNT(*) AS n FROM devices",
}


class _Snapshot(Collector):
    """Metric families from values read just before the scrape is rendered."""

    def __init__(self, values: dict[str, float], open_by_kind: dict[str, float],
                 logins: dict[str, float], locked: dict[str, float]):
        self._values = values
        self._open = open_by_kind
        self._logins = logins
        self._locked = locked

    def collect(self) -> Iterator[Metric]:
        v = self._values
        yield CounterMetricFamily("doorwatch_events_ingested", "Device events stored",
                                  value=v["events"])
        yield CounterMetricFamily("doorwatch_messages_rejected",
                                  "Messages rejected (invalid, unknown device)",
                                  value=v["rejected"])
        yield CounterMetricFamily("doorwatch_notification_attempts_failed",
                                  "Delivery attempts that failed", value=v["attempts_failed"])
        yield GaugeMetricFamily("doorwatch_notifications_failed",
                                "Notifications given up after every retry",
                                value=v["notify_failed"])
        opened = GaugeMetricFamily("doorwatch_incidents_open", "Unresolved incidents by kind",
                                   labels=["kind"])
        for kind, count in sorted(self._open.items()):
            opened.add_metric([kind], count)
        yield opened
        yield GaugeMetricFamily("doorwatch_devices", "Registered devices", value=v["devices"])
        yield GaugeMetricFamily("doorwatch_devices_online",
                                "Devices online with a recent heartbeat", value=v["online"])
        logins = CounterMetricFamily("doorwatch_login_attempts",
                                     "Dashboard and API login attempts by outcome "
                                     "(success, failed, throttled)", labels=["outcome"])
        for outcome, count in sorted(self._logins.items()):
            logins.add_metric([outcome], count)
        yield logins
        locked = GaugeMetricFamily("doorwatch_login_locked",
                                   "Login throttles in force: user_source pairs and sources",
                                   labels=["scope"])
        for scope, count in sorted(self._locked.items()):
            locked.add_metric([scope], count)
        yield locked


async def render_metrics(db: Database) -> bytes:
    """The Prometheus text exposition of doorwatch's metrics."""
    values: dict[str, float] = {}
    for name, sql in _QUERIES.items():
        row = await db.fetch_one(sql)
        values[name] = float(row["n"]) if row else 0.0
    since = to_ts(utcnow() - timedelta(seconds=HEARTBEAT_STALE_S))
    row = await db.fetch_one(
        "SELECT COUNT(*) AS n FROM devices WHERE status = 'online' AND last_heartbeat_at >= ?",
        (since,),
    )
    values["online"] = float(row["n"]) if row else 0.0
    rows = await db.fetch_all(
        "SELECT kind, COUNT(*) AS n FROM incidents WHERE state != 'resolved' GROUP BY kind")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(values, {r["kind"]: float(r["n"]) for r in rows},
                                await login_counts(db), await locked_now(db)))
    registry.register(await rejected_by_device(db))
    return generate_latest(registry)
