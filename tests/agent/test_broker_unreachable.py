"""An agent that cannot reach its broker says so: at once, sparingly while retrying, and
when it gets through.

paho retries a failed connection in silence; an agent started while the broker was
down logged nothing, so an operator had no reason for the device's silence. The
real test starts the link against a closed port, then brings a Mosquitto up on it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent.link import AgentLink
from agent.outbox import Outbox
from agent.reach import BrokerReach
from broker.mosquitto.directory import BrokerDir
from broker.mosquitto.runner import find_mosquitto
from firmware_config.device_config import MqttLinkSettings
from ground.ports import free_ports
from tests.conftest import Mosquitto
from tests.requirements import need
from tests.waiting import wait_until_async

DEVICE = "unreach-dev"


def _unreachable(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agent.reach"]


def test_reminders_come_at_growing_intervals_then_the_broker_is_reached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    reach = BrokerReach(DEVICE, clock=lambda: now[0])
    caplog.set_level(logging.INFO)
    for second in range(0, 2000, 5):  # a failed attempt every 5 s for half an hour
        now[0] = float(second)
        reach.failed("broker.example:8883", "ConnectionRefusedError: refused")
    said = _unreachable(caplog)
    # The first failure at once, then after 1, 2, 4, 8 minutes, then every 15 minutes.
    assert [r.unreachable_s for r in said] == [0.0, 60.0, 180.0, 420.0, 900.0, 1800.0]  # type: ignore[attr-defined]
    assert [r.failed_attempts for r in said] == [1, 13, 37, 85, 181, 361]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING and r.device_id == DEVICE  # type: ignore[attr-defined]
               and r.broker == "broker.example:8883" for r in said)  # type: ignore[attr-defined]
    now[0] = 2001.0
    assert reach.reached() == {"failed_attempts": 400, "unreachable_s": 2001.0}
    assert reach.reached() == {}  # reached once: nothing more to say
    reach.failed("broker.example:8883", "TimeoutError: timed out")  # down again: said at once
    assert len(_unreachable(caplog)) == 7
    assert _unreachable(caplog)[-1].failed_attempts == 1  # type: ignore[attr-defined]


@pytest.mark.broker
@pytest.mark.parametrize("threaded", [True, False], ids=["paho-thread", "event-loop"])
async def test_an_agent_started_with_the_broker_down_says_so_once_then_that_it_got_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, threaded: bool
) -> None:
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    port, loopback = free_ports(2)  # nothing listens there until the broker starts
    broker = BrokerDir(tmp_path / "broker")
    broker.init(port=port, host="127.0.0.1", loopback_port=loopback)
    password = "unreach-secret-0123456789"
    broker.set_password(DEVICE, password)
    caplog.set_level(logging.INFO)
    settings = MqttLinkSettings(host="127.0.0.1", port=port, tls=True,
                                ca_file=broker.ca_cert_file, password=SecretStr(password))
    outbox = await Outbox.connect(tmp_path / "outbox.db", durable=False)
    link = AgentLink(DEVICE, settings, outbox, threaded=threaded)
    link.start(asyncio.get_running_loop())
    mosquitto = Mosquitto(broker)
    try:
        await wait_until_async(lambda: link.reach.failures >= 3, "three failed attempts", 20)
        said = _unreachable(caplog)
        assert len(said) == 1, [r.getMessage() for r in said]  # not one line per retry
        first = said[0]
        assert first.levelno == logging.WARNING
        assert "cannot reach the broker" in first.getMessage()
        assert first.device_id == DEVICE  # type: ignore[attr-defined]
        assert first.broker == f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        assert first.error.startswith("ConnectionRefusedError")  # type: ignore[attr-defined]
        mosquitto.start()
        await wait_until_async(link.connected.is_set, "the agent connected", 40)
        got_through = [r for r in caplog.records if r.getMessage() == "connected to broker"]
        assert len(got_through) == 1
        assert got_through[0].device_id == DEVICE  # type: ignore[attr-defined]
        assert got_through[0].failed_attempts >= 3  # type: ignore[attr-defined]
        assert got_through[0].unreachable_s > 0  # type: ignore[attr-defined]
    finally:
        link.stop()
        await outbox.close()
        mosquitto.stop()
