"""The HTTP API and server-rendered dashboard (FastAPI + Jinja2)."""

from __future__ import annotations

from server.web.app import create_app

__all__ = ["create_app"]
