"""A device's snapshot is evidence for that device's own events only (issue 17, item 5).

A snapshot names its event by ``event_id``. Without a check, door-a could send
on its own topic a snapshot naming door-b's event: it was stored, door-b's real
snapshot arriving later was dropped (one snapshot per event_id), and the
supervisor saw door-a's picture on door-b's incident. Now, before a snapshot
is stored:

* the event is stored under another device: the snapshot is rejected (a row in
  ``rejected_messages`` with the reason) and a security event is audited;
* the event is the sender's: a snapshot another device slipped in before the
  event arrived is deleted (recorded as rejected), so the real one is kept;
* the event is not stored yet (a snapshot may overtake its event): kept under
  the sender's device id. The dashboard joins snapshots to events on event_id
  *and* device_id, so such a snapshot is never shown on another device's event.
"""

from __future__ import annotations

from broker.messages import Snapshot
from broker.topics import Channel, device_topic
from server.db.base import Transaction
from server.db.event_key import event_key
from server.domain.audit import audit
from server.ingest.rejections import Rejection
from server.mqtt.inbound import InboundMessage

__all__ = ["claim_snapshot"]


async def claim_snapshot(
    tx: Transaction, message: InboundMessage, snap: Snapshot
) -> tuple[bool, list[Rejection]]:
    """Whether ``snap`` may be stored, and what to record as rejected because of it."""
    event_id = str(snap.event_id)
    owner = await tx.fetch_one("SELECT device_id FROM events WHERE event_key = ? AND event_id = ?",
                               (event_key(snap.event_id), event_id))
    if owner is None:
        return True, []
    if owner["device_id"] != snap.device_id:
        reason = f"snapshot for event_id {event_id} of another device ({owner['device_id']})"
        await audit(tx, f"device:{snap.device_id}", "security.snapshot_for_other_device",
                    f"device:{owner['device_id']}", f"{message.topic}: {reason}")
        return False, [(message, reason, snap.device_id)]
    squatter = await tx.fetch_one(
        "SELECT device_id, jpeg FROM snapshots WHERE event_id = ? AND device_id != ?",
        (event_id, snap.device_id))
    if squatter is None:
        return True, []
    await tx.execute("DELETE FROM snapshots WHERE event_id = ? AND device_id != ?",
                     (event_id, snap.device_id))
    other = str(squatter["device_id"])
    removed = InboundMessage(topic=device_topic(other, Channel.SNAPSHOT),
                             payload=bytes(squatter["jpeg"]), received_at=message.received_at)
    reason = (f"snapshot for event_id {event_id} of another device ({snap.device_id}); "
              "removed when that device's own snapshot arrived (payload: the JPEG)")
    return True, [(removed, reason, other)]
