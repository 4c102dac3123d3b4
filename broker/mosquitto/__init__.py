"""Mosquitto configuration templates shipped with doorwatch (package data)."""
