"""RabbitMQ profile: the permissions a device gets, checked against the routing keys it uses.

The MQTT plugin turns a topic into a routing key (``/`` -> ``.``) and matches topic
permissions as regular expressions (Erlang's PCRE; these patterns use nothing
where it differs from Python's ``re``). That logins work with these hashes and
that devices log in with them is shown against a real cluster in
tests/faults/test_rabbitmq_cluster.py.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from broker.rabbitmq.definitions import (
    INGEST_BINDING,
    INGEST_QUEUE,
    definitions,
    device_definitions,
    password_hash,
    routing_key,
    topic_of,
)
from broker.topics import Channel, command_topic, device_subscription, device_topic
from firmware_config.device_config import MqttLinkSettings


def _perms(device_id: str) -> tuple[dict[str, str], dict[str, str]]:
    d = device_definitions(device_id, "pw")
    return d["permissions"][0], d["topic_permissions"][0]


def _allows(pattern: str, key: str) -> bool:
    return re.search(pattern, key) is not None


@pytest.mark.parametrize("device_id", ["dev-01", "a_b", "x9"])
def test_a_device_publishes_only_its_own_topics(device_id: str) -> None:
    _, topic = _perms(device_id)
    for channel in Channel:
        assert _allows(topic["write"], routing_key(device_topic(device_id, channel)))
    assert not _allows(topic["write"], routing_key(device_topic("other-dev", Channel.EVENT)))
    # A prefix of another id is not its own.
    assert not _allows(topic["write"], routing_key(device_topic(device_id + "x", Channel.EVENT)))
    assert not _allows(topic["write"], routing_key(command_topic(device_id, "arm")))
    assert not _allows(topic["write"], routing_key(device_topic(device_id, Channel.EVENT)) + ".x")


def test_a_device_reads_only_its_own_commands() -> None:
    _, topic = _perms("dev-01")
    assert _allows(topic["read"], routing_key("doorwatch/v1/cmd/dev-01/#"))
    assert not _allows(topic["read"], routing_key("doorwatch/v1/cmd/#"))
    assert not _allows(topic["read"], routing_key("doorwatch/v1/cmd/dev-02/#"))
    assert not _allows(topic["read"], routing_key(device_subscription()))


def test_a_device_may_use_only_its_own_session_queues() -> None:
    vhost, _ = _perms("dev-01")
    assert _allows(vhost["configure"], "mqtt-subscription-dev-01qos1")
    assert not _allows(vhost["configure"], "mqtt-subscription-dev-02qos1")
    assert not _allows(vhost["read"], INGEST_QUEUE)
    assert not _allows(vhost["configure"], INGEST_QUEUE)


def test_the_ingest_queue_is_quorum_and_bound_to_every_device_topic() -> None:
    d = definitions(server_password="s", admin_password="a", devices={"dev-01": "p"})
    (queue,) = d["queues"]
    assert queue["name"] == INGEST_QUEUE
    assert queue["arguments"] == {"x-queue-type": "quorum"}
    (binding,) = d["bindings"]
    assert binding["routing_key"] == INGEST_BINDING == "doorwatch.v1.dev.#"
    assert {u["name"] for u in d["users"]} == {"doorwatch-server", "doorwatch-admin", "dev-01"}
    server_topic = next(t for t in d["topic_permissions"] if t["user"] == "doorwatch-server")
    assert _allows(server_topic["write"], routing_key(command_topic("dev-01", "arm")))
    assert not _allows(server_topic["write"], routing_key(device_topic("dev-01", Channel.EVENT)))


def test_password_hash_is_rabbitmq_sha256_form() -> None:
    encoded = password_hash("secret", salt=b"\x01\x02\x03\x04")
    raw = base64.b64decode(encoded)
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04secret").digest()
    assert password_hash("secret") != password_hash("secret")  # salted


def test_routing_keys_round_trip() -> None:
    topic = device_topic("dev-01", Channel.STATUS)
    assert topic_of(routing_key(topic)) == topic


def test_device_config_takes_several_broker_nodes() -> None:
    settings = MqttLinkSettings(host="n1", port=8883, brokers=["n2", "n3:9883"])
    assert settings.addresses() == [("n1", 8883), ("n2", 8883), ("n3", 9883)]
    with pytest.raises(ValueError, match="brokers"):
        MqttLinkSettings(brokers=["n2:notaport"])
