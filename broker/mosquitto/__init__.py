"""Broker operations (not the contract): Mosquitto's folder, TLS, passwords, runner and
configuration templates (package data); the TLS half is shared with broker/rabbitmq."""
