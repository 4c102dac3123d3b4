"""doorwatch: the one CLI and the demo, on top of every part.

The parts live in the top-level packages ``ground`` (errors, logs, time, i18n),
``firmware_config``, ``broker``, ``sensors``, ``agent`` and ``server``; the CLI in
:mod:`doorwatch.cli` loads a part only when one of its commands runs.
"""

__version__ = "0.1.0"
