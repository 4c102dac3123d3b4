"""The check-in chime: an active buzzer on a GPIO pin (gpiozero), mock pins in tests."""

from __future__ import annotations

from typing import Any

__all__ = ["Chime"]


class Chime:
    """Beeps a buzzer wired to BCM pin ``pin`` (``pin_factory``: gpiozero's, e.g. the mock)."""

    def __init__(self, pin: int, *, pin_factory: Any, beeps: int = 3, beep_s: float = 0.25):
        from gpiozero import Buzzer

        self._buzzer = Buzzer(pin, pin_factory=pin_factory)
        self.beeps = beeps
        self.beep_s = beep_s
        self.sounded = 0  # chimes sounded since start (the status line, tests)

    def sound(self) -> None:
        """Beep ``beeps`` times and return when done (blocking: run it off the loop)."""
        self._buzzer.beep(on_time=self.beep_s, off_time=self.beep_s, n=self.beeps,
                          background=False)
        self.sounded += 1

    def close(self) -> None:
        """Release the pin."""
        self._buzzer.close()
