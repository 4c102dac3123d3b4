"""The RabbitMQ profile: a three-node cluster with the MQTT plugin and a quorum queue.

Devices keep speaking MQTT 3.1.1 with their own accounts; the server reads the
replicated ingest queue over AMQP 0-9-1 (server/amqp/link.py). Why RabbitMQ and
not NATS: docs/scale-out.md, "Which clustered broker: measured".
"""
