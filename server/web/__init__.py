"""The HTTP API and server-rendered dashboard (FastAPI + Jinja2), built by :mod:`server.web.app`."""
