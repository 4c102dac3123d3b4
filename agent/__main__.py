"""``python -m agent``: the device commands alone (what a Pi image needs)."""

from agent.cli import agent_app

agent_app(prog_name="doorwatch agent")
