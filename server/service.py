"""The server process: consumer, notifier (and later HTTP) as one structured service."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from doorwatch.logs import get_logger
from doorwatch.sdnotify import ServiceNotifier, watchdog_pings
from server.clock import Clock, SystemClock
from server.commissioning import commissioning_hook
from server.config import ServerSettings
from server.consumer import Consumer
from server.db import Database, open_database
from server.device_watch import DeviceWatch
from server.escalation import Escalator
from server.inbound import InboundBuffer
from server.ingest import Ingestor
from server.mqtt_link import MqttLink
from server.notify.sender import NotificationSender
from server.retention import RetentionJob
from server.schedule import Scheduler
from server.web.runner import WebServer, start_web

__all__ = ["RunningServer", "run_server", "serve"]

log = get_logger(__name__)


@dataclass
class RunningServer:
    """Handles to a running server's parts (for tests and the demo)."""

    settings: ServerSettings
    db: Database
    mqtt: MqttLink
    consumer: Consumer
    sender: NotificationSender
    web: WebServer | None = None
    escalator: Escalator | None = None
    scheduler: Scheduler | None = None
    device_watch: DeviceWatch | None = None
    retention: RetentionJob | None = None


@asynccontextmanager
async def serve(
    settings: ServerSettings, *, clock: Clock | None = None
) -> AsyncIterator[RunningServer]:
    """Run the server's loops for the duration of the ``async with`` block.

    The loops run as named tasks in a TaskGroup; leaving the block cancels
    them, disconnects from the broker (keeping the persistent session) and
    closes the database.
    """
    db = await open_database(settings.database_url)
    buffer = InboundBuffer()
    link = MqttLink(settings.mqtt, buffer)
    consumer = Consumer(
        buffer,
        Ingestor(db, settings),
        link.ack_many,
        batch_max=settings.ingest.batch_max,
        batch_wait_s=settings.ingest.batch_wait_ms / 1000,
    )
    sender = NotificationSender(db, settings.notify, settings.instance)
    consumer.on_committed.append(lambda result: sender.wake() if result.incidents_opened else None)
    # A newly stored commissioning event is answered with a ping (after the commit).
    consumer.on_committed.append(commissioning_hook(link))
    try:
        await sender.warm_up()  # before subscribing (see warm_up)
        web = await start_web(db, settings) if settings.http.enabled else None
        if web is not None:
            web.app.state.commands = link  # the dashboard's commands to devices (door line)
    except BaseException:
        await db.close()
        raise
    # The timers read the time only through ``clock``, so tests can move it.
    clock = clock or SystemClock()
    escalator = Escalator(db, settings, clock)
    scheduler = Scheduler(db, settings, link, clock, is_connected=link.connected.is_set)
    device_watch = DeviceWatch(db, settings, clock)
    retention = RetentionJob(db, settings, clock)
    running = RunningServer(settings, db, link, consumer, sender, web, escalator=escalator,
                            scheduler=scheduler, device_watch=device_watch, retention=retention)
    link.start(asyncio.get_running_loop())
    log.info("server starting", extra={"broker": link.where, "database": settings.database_url,
                                        "instance": settings.instance})
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(consumer.run(), name="consumer"),
                group.create_task(sender.run(), name="notifier"),
                # READY=1 then WATCHDOG=1 from this event loop (systemd Type=notify unit).
                group.create_task(watchdog_pings(ServiceNotifier()), name="systemd-watchdog"),
            ]
            if web is not None:
                tasks.append(group.create_task(web.run(), name="http"))
            # Domain timers: each claims its work in the database (conditional UPDATEs),
            # so every instance may run them; see each module's docstring.
            tasks += [
                group.create_task(escalator.run(), name="escalation"),
                group.create_task(scheduler.run(), name="schedule"),
                group.create_task(device_watch.run(), name="device-watch"),
                group.create_task(retention.run(), name="retention"),
            ]
            try:
                yield running
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        link.stop()
        await db.close()
        log.info("server stopped", extra={"stored": consumer.totals.stored,
                                          "rejected": consumer.totals.rejected})


def _tune_interpreter() -> None:
    """Collect cycles less often than CPython's default, never scan start-up objects,
    and hand the GIL to the database thread sooner.

    Each ingested event leaves a dozen short-lived container objects (model,
    dicts, tuples), so with the default threshold (700) a 1,000-message batch
    runs the collector dozens of times, each also walking the survivors; that
    was a fifth of the server's CPU per event at full ingest. Nothing on the
    ingest path makes reference cycles (they would be collected all the same,
    only later). ``freeze`` moves what start-up built (modules, FastAPI,
    Apprise's plugins) out of every future collection.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # Ingest keeps two threads busy: the event loop's (MQTT packets, validation) and
    # SQLite's (each batch's transaction). Each time SQLite's thread leaves C code (a
    # statement or a row done) it needs the GIL back, and waits up to this interval
    # behind the event loop. The default 5 ms made them alternate instead of overlap;
    # measured on 300,000-event drains into SQLite: 0.2 ms gave 72,000-79,000 events/s,
    # 50 us 73,000-77,000, 20 us 87,000-95,000 with less CPU per event (fewer futile
    # wake-ups); 10 and 5 us were no better and noisier.
    sys.setswitchinterval(0.00002)


async def run_server(settings: ServerSettings) -> None:
    """Run until cancelled (SIGINT/SIGTERM)."""
    _tune_interpreter()
    async with serve(settings):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
