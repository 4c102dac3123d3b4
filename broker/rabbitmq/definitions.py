"""Users, permissions, the ingest queue: RabbitMQ definitions for doorwatch.

RabbitMQ's permission model replaces Mosquitto's ACL file. The MQTT plugin maps a
topic to a routing key on ``amq.topic`` with ``/`` turned into ``.``, and checks
topic permissions (regular expressions on that routing key) when a client
publishes (``write``) or subscribes (``read``). Each device is its own user with:

* vhost permissions on its own MQTT session queues only (a persistent session's
  subscription lives in ``mqtt-subscription-<client id>qos1``), so another device
  cannot take its session over with its client id;
* topic permissions ``write ^doorwatch\\.v1\\.dev\\.<id>\\.(event|...)$`` and
  ``read ^doorwatch\\.v1\\.cmd\\.<id>\\.``: it publishes only its own topics and
  subscribes only to its own commands.

The ingest queue is a quorum queue (replicated with Raft on every node) bound to
every device topic. It must exist before the first device publishes: an MQTT
message that no queue takes is acknowledged to the device and dropped. Its
definition is part of what ``broker init`` imports for that reason.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

from broker.mosquitto.directory import ADMIN_USER, SERVER_USER
from broker.topics import PREFIX, Channel

__all__ = [
    "EXCHANGE",
    "INGEST_BINDING",
    "INGEST_QUEUE",
    "VHOST",
    "definitions",
    "device_definitions",
    "password_hash",
    "routing_key",
    "topic_of",
]

VHOST = "/"
# The MQTT plugin's exchange (mqtt.exchange, its default).
EXCHANGE = "amq.topic"
INGEST_QUEUE = "doorwatch.ingest"
_KEY_PREFIX = PREFIX.replace("/", ".")
INGEST_BINDING = f"{_KEY_PREFIX}.dev.#"
_DEV = re.escape(f"{_KEY_PREFIX}.dev.")
_CMD = re.escape(f"{_KEY_PREFIX}.cmd.")
_CHANNELS = "|".join(sorted(c.value for c in Channel))


def routing_key(topic: str) -> str:
    """The routing key the MQTT plugin gives ``topic`` (its ``/`` become ``.``)."""
    return topic.replace("/", ".")


def topic_of(key: str) -> str:
    """The MQTT topic of a routing key (our topics contain no ``.``)."""
    return key.replace(".", "/")


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` form: base64(salt + sha256(salt + pw))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _user(name: str, password: str, tags: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "password_hash": password_hash(password),
            "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags or [],
            "limits": {}}


def _session_queues(client_id_pattern: str) -> str:
    return f"mqtt-subscription-{client_id_pattern}qos[01]"


def device_definitions(device_id: str, password: str) -> dict[str, Any]:
    """One device's user, vhost permissions and topic permissions."""
    dev = re.escape(device_id)
    queues = _session_queues(dev)
    return {
        "users": [_user(device_id, password)],
        "permissions": [{"user": device_id, "vhost": VHOST, "configure": f"^{queues}$",
                         "write": f"^({queues}|amq\\.topic)$",
                         "read": f"^({queues}|amq\\.topic)$"}],
        "topic_permissions": [{"user": device_id, "vhost": VHOST, "exchange": EXCHANGE,
                               "write": f"^{_DEV}{dev}\\.({_CHANNELS})$",
                               "read": f"^{_CMD}{dev}\\."}],
    }


def definitions(*, server_password: str, admin_password: str,
                devices: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything ``broker init`` imports: accounts, permissions, the ingest queue."""
    server_q = re.escape(INGEST_QUEUE)
    admin_queues = _session_queues(re.escape(ADMIN_USER) + "-[0-9]+")
    out: dict[str, Any] = {
        "vhosts": [{"name": VHOST}],
        "users": [_user(SERVER_USER, server_password),
                  _user(ADMIN_USER, admin_password, ["administrator"])],
        "permissions": [
            # The server declares and binds the ingest queue, reads it, and publishes
            # commands to amq.topic (routing key checked by its topic permissions).
            {"user": SERVER_USER, "vhost": VHOST, "configure": f"^{server_q}$",
             "write": f"^({server_q}|amq\\.topic)$", "read": f"^({server_q}|amq\\.topic)$"},
            # `device rotate` watches one device's answers over MQTT (clean session).
            {"user": ADMIN_USER, "vhost": VHOST, "configure": f"^{admin_queues}$",
             "write": f"^({admin_queues}|amq\\.topic)$",
             "read": f"^({admin_queues}|amq\\.topic)$"},
        ],
        "topic_permissions": [
            {"user": user, "vhost": VHOST, "exchange": EXCHANGE,
             "write": f"^{_CMD}", "read": f"^{_DEV}"}
            for user in (SERVER_USER, ADMIN_USER)
        ],
        "queues": [{"name": INGEST_QUEUE, "vhost": VHOST, "durable": True,
                    "auto_delete": False, "arguments": {"x-queue-type": "quorum"}}],
        "exchanges": [],
        "bindings": [{"source": EXCHANGE, "vhost": VHOST, "destination": INGEST_QUEUE,
                      "destination_type": "queue", "routing_key": INGEST_BINDING,
                      "arguments": {}}],
        "parameters": [], "policies": [], "global_parameters": [],
    }
    for device_id, password in (devices or {}).items():
        for key, items in device_definitions(device_id, password).items():
            out[key] += items
    return out
