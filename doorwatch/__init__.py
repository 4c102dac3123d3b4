"""doorwatch: door and camera watch for households in home quarantine.

This package holds what every part shares: the root error type, structured
logging, the user-facing message catalogue, the one ``doorwatch`` CLI and the
demo orchestration. The parts themselves live in the top-level packages
``agent``, ``sensors``, ``firmware_config``, ``broker`` and ``server``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
