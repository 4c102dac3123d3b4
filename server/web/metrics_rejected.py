"""Per-device rejection counters for /metrics, from ``rejected_counts``.

The counts are kept by server/ingest/rejections.py.

Read from the table, not the rows of ``rejected_messages``: the counts survive
the retention purge and include messages past a device's daily row budget.
Label values are device ids the broker authenticated (a device can only
publish under its own id), so their number is bounded by the password file;
``""`` counts messages no device could be named for.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from server.db.base import Database

__all__ = ["RejectedByDevice", "rejected_by_device"]


class RejectedByDevice(Collector):
    """``doorwatch_device_messages_rejected_total`` and ``..._unrecorded_total`` by device."""

    def __init__(self, counts: list[tuple[str, float, float]]):
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "doorwatch_device_messages_rejected",
            "Messages rejected per device (invalid, unknown device, conflicting record)",
            labels=["device_id"])
        unrecorded = CounterMetricFamily(
            "doorwatch_device_messages_rejected_unrecorded",
            "Rejected messages past the device's daily row budget (counted, no row kept)",
            labels=["device_id"])
        for device_id, count, past_budget in self._counts:
            total.add_metric([device_id], count)
            unrecorded.add_metric([device_id], past_budget)
        yield total
        yield unrecorded


async def rejected_by_device(db: Database) -> RejectedByDevice:
    """The counters as they are now."""
    rows = await db.fetch_all(
        "SELECT device_id, total, unrecorded FROM rejected_counts ORDER BY device_id")
    return RejectedByDevice([(str(r["device_id"]), float(r["total"]), float(r["unrecorded"]))
                             for r in rows])
