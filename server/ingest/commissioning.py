"""The server's half of commissioning: answer a stored ``commissioning`` event with a ping.

An installer's ``doorwatch agent commission`` publishes an event of kind
``commissioning``; when the server has *committed* it (never from inside the
transaction), it sends the device a :class:`~broker.messages.PingCommand` on
``cmd/<device>/ping``. The device receiving that ping proves its event reached
the server's database; its ack closes the loop, and the ping's ``issued_at``
(the server's clock) gives the device its clock offset.

Only newly stored events are answered (a redelivered duplicate is not), and
only by the instance that stored it, so several server instances on a shared
subscription send one ping per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from broker.messages import PingCommand, encode, utc_now
from broker.topics import command_topic
from ground.logs import get_logger
from server.ingest.ingestor import BatchResult
from server.jobs.schedule import CommandPublisher

__all__ = ["commissioning_hook", "ping_commissioned"]

log = get_logger(__name__)


def ping_commissioned(publisher: CommandPublisher,
                      commissioned: Iterable[tuple[str, UUID]]) -> int:
    """Publish one ping per ``(device_id, event_id)``; return how many were handed over.

    The ping's ``command_id`` is the commissioning event's ``event_id``: the
    answer names the event it confirms (and the device's ack names it again).
    Publishing only hands the message to paho (queued while disconnected), so
    this is quick enough to run right after a commit on the event loop.
    """
    sent = 0
    for device_id, event_id in commissioned:
        ping = PingCommand(device_id=device_id, command_id=event_id, issued_at=utc_now())
        try:
            publisher.publish(command_topic(device_id, ping.name), encode(ping), qos=1)
        except Exception:
            # A failed ping costs the installer one retry; it must never stop the consumer.
            log.exception("commissioning ping not sent", extra={"device_id": device_id})
            continue
        sent += 1
        log.info("commissioning event stored; ping sent",
                 extra={"device_id": device_id, "event_id": str(event_id)})
    return sent


def commissioning_hook(publisher: CommandPublisher) -> Callable[[BatchResult], None]:
    """A :attr:`~server.ingest.consumer.Consumer.on_committed` hook pinging commissioned devices."""

    def hook(result: BatchResult) -> None:
        if result.commissioned:
            ping_commissioned(publisher, result.commissioned)

    return hook
