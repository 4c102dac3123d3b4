"""The server process: consumer, notifier (and later HTTP) as one structured service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ground.logs import get_logger
from ground.sdnotify import ServiceNotifier, watchdog_pings
from server.amqp.link import AmqpLink
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database
from server.db.connect import open_database
from server.ingest.commissioning import commissioning_hook
from server.ingest.consumer import Consumer
from server.ingest.ingestor import Ingestor
from server.interpreter import tune_interpreter
from server.jobs.checkin_watch import CheckinJob
from server.jobs.device_watch import DeviceWatch
from server.jobs.escalation import Escalator
from server.jobs.followup_reminder import FollowUpReminder
from server.jobs.grid_report import GridReportJob
from server.jobs.retention import RetentionJob
from server.jobs.schedule import Scheduler
from server.jobs.visit_watch import VisitWatch
from server.mqtt.inbound import InboundBuffer
from server.mqtt.link import MqttLink
from server.notify.sender import NotificationSender
from server.web.runner import WebServer, start_web

__all__ = ["RunningServer", "run_server", "serve"]

log = get_logger(__name__)


@dataclass
class RunningServer:
    """Handles to a running server's parts (for tests and the demo)."""

    settings: ServerSettings
    db: Database
    mqtt: MqttLink | AmqpLink  # the broker link, whichever profile
    consumer: Consumer
    sender: NotificationSender
    web: WebServer | None = None
    escalator: Escalator | None = None
    scheduler: Scheduler | None = None
    device_watch: DeviceWatch | None = None
    retention: RetentionJob | None = None
    followup_reminder: FollowUpReminder | None = None
    visit_watch: VisitWatch | None = None
    grid_report: GridReportJob | None = None
    checkins: CheckinJob | None = None


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
    # The RabbitMQ profile feeds the same buffer from a replicated queue (server/amqp/link.py).
    link: MqttLink | AmqpLink = (AmqpLink(settings.amqp, buffer)
                                 if settings.broker == "rabbitmq"
                                 else MqttLink(settings.mqtt, buffer))
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
    reminder = FollowUpReminder(db, settings, clock)
    visit_watch = VisitWatch(db, settings, clock)
    grid_report = GridReportJob(db, settings, clock)
    checkins = CheckinJob(db, settings, link, clock)
    running = RunningServer(settings, db, link, consumer, sender, web, escalator=escalator,
                            scheduler=scheduler, device_watch=device_watch, retention=retention,
                            followup_reminder=reminder, visit_watch=visit_watch,
                            grid_report=grid_report, checkins=checkins)
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
                group.create_task(reminder.run(), name="followup-reminder"),
                group.create_task(visit_watch.run(), name="visit-watch"),
                group.create_task(grid_report.run(), name="grid-report"),
                group.create_task(checkins.run(), name="checkin-watch"),
            ]
            try:
                yield running
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        await link.close()
        await db.close()
        log.info("server stopped", extra={"stored": consumer.totals.stored,
                                          "rejected": consumer.totals.rejected})


async def run_server(settings: ServerSettings) -> None:
    """Run until cancelled (SIGINT/SIGTERM)."""
    tune_interpreter()
    async with serve(settings):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
