"""A building's power cut on real Mosquitto: one grouped incident, one notification.

Five devices connect over TLS with the agent's Last Will (retained status
``offline``) and say ``online``; their connections then drop without a
DISCONNECT, as when the power goes, so Mosquitto publishes every Last Will.
The server (consumer, device watch, notifier) groups the four outages of the
building into one incident and the phone (a local HTTP receiver) gets exactly
one notification; the fifth household is silenced (a hospital stay): its
outage is recorded, nobody is told, and it is not counted in the storm.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import DeviceState, Status, encode, utc_now
from broker.topics import Channel, device_topic
from ground.timeutil import utcnow
from server.domain import devices, households, people
from server.domain.silences import SilenceIn, silence_household
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import server_settings
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


def connect(broker: Mosquitto, device_id: str, password: str) -> mqtt.Client:
    """A device connection with the agent's Last Will, announcing itself online (retained)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, password)
    offline = Status(device_id=device_id, state=DeviceState.OFFLINE, time=utc_now())
    client.will_set(device_topic(device_id, Channel.STATUS), encode(offline), 1, True)
    broker.connect_device(client, keepalive=30)
    client.loop_start()
    online = Status(device_id=device_id, state=DeviceState.ONLINE, time=utc_now())
    client.publish(device_topic(device_id, Channel.STATUS), encode(online), qos=1,
                   retain=True).wait_for_publish(10)
    return client


def cut_power(client: mqtt.Client) -> None:
    """Drop the connection without a DISCONNECT: the broker publishes the Last Will."""
    client.loop_stop()
    sock = client.socket()
    assert sock is not None
    sock.close()


async def test_power_cut_in_a_building_is_one_notification(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    settings = server_settings(
        tmp_path, mosquitto,
        devices={"offline_grace_s": 0.5, "poll_interval_s": 0.2, "heartbeat_budget_s": 1e6},
        storm={"threshold": 4, "window_s": 60, "hold_s": 3})
    names = [f"door-b{n}" for n in range(1, 6)]
    passwords = {name: mosquitto.add_device(name) for name in names}
    async with serve(settings) as server:
        db = server.db
        grid = await people.add_grid(db, people.GridIn(name="幸福社区"), actor="t")
        worker = await people.add_worker(db, people.WorkerIn(
            name="王网格", apprise_urls=[receiver.apprise_url], grid_id=grid), actor="t")
        homes = {}
        for n, name in enumerate(names, 1):
            homes[name] = await households.add_household(db, households.HouseholdIn(
                name=f"{n}0{n}室", address=f"幸福路 8 号 3号楼 {n}0{n}", grid_id=grid,
                worker_id=worker, building="幸福路 8 号 3号楼"), actor="t")
            await devices.register_device(db, name, household_id=homes[name], actor="t")
        await silence_household(db, SilenceIn(
            household_id=homes["door-b5"], reason="全家住院", until=utcnow() + timedelta(days=2)),
            actor="李主任")
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        clients = [await asyncio.to_thread(connect, mosquitto, name, passwords[name])
                   for name in names]

        async def online() -> bool:
            row = await db.fetch_one("SELECT COUNT(*) AS n FROM devices WHERE status = 'online'")
            return row is not None and int(row["n"]) == len(names)

        await wait_until_async(online, "every device online", 20)
        for client in clients:
            cut_power(client)

        async def grouped() -> bool:
            row = await db.fetch_one("SELECT COUNT(*) AS n FROM incidents WHERE group_id IS "
                                     "NOT NULL")
            return row is not None and int(row["n"]) == 4

        await wait_until_async(grouped, "the four offline incidents grouped", 30)
        assert await asyncio.to_thread(receiver.wait_for, 1, 20)
        # A window, not a wait: the single alerts were held 3 s; past that, nothing more
        # may arrive.
        await asyncio.sleep(settings.storm.hold_s + 2)
        incidents = await db.fetch_all("SELECT kind, device_id, group_id, silence_id "
                                       "FROM incidents ORDER BY id")
    assert len(receiver.received) == 1
    note = receiver.received[0]
    assert "幸福路 8 号 3号楼" in str(note["title"])
    assert "批量离线" in str(note["title"])
    assert "4: " in str(note["message"])
    kinds = sorted((i["kind"], i["device_id"] or "") for i in incidents)
    assert kinds == [("device_offline", name) for name in names] + [("offline_group", "")]
    silenced = [i for i in incidents if i["device_id"] == "door-b5"]
    assert silenced[0]["silence_id"] is not None
    assert silenced[0]["group_id"] is None
