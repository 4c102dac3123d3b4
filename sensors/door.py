"""The door's reed switch, read through gpiozero.

The switch is wired between a GPIO pin and ground with the pull-up on: the
magnet holds it closed (pin low, gpiozero "pressed") while the door is shut,
so the pin going high means the door opened. A cut wire also reads as
"open", which is the safe failure for a quarantine door.

Any gpiozero pin factory works; tests and simulation pass gpiozero's own
``MockFactory`` and drive the pin (``drive_high()`` = door opens).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ground.errors import HardwareError

__all__ = ["DoorContact", "DoorTransition", "make_pin_factory"]


@dataclass(frozen=True, slots=True)
class DoorTransition:
    """The door opened (``is_open``) or closed, at monotonic time ``at``."""

    is_open: bool
    at: float


def make_pin_factory(name: str) -> Any:
    """Build the gpiozero pin factory called ``name`` ('mock', 'lgpio' or 'native').

    The import happens here, only for the chosen backend; a backend that
    cannot be imported is a clear error, never a silent fallback to another.
    """
    try:
        if name == "mock":
            from gpiozero.pins.mock import MockFactory

            return MockFactory()
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if name == "native":
            from gpiozero.pins.native import NativeFactory

            return NativeFactory()
    except Exception as exc:
        raise HardwareError(f"pin backend {name!r} is not usable here: {exc}",
                            device="gpio") from exc
    raise HardwareError(f"unknown pin backend {name!r} (use mock, lgpio or native)", device="gpio")


class DoorContact:
    """A reed switch on a GPIO pin that reports open/close transitions."""

    def __init__(
        self,
        pin: int,
        *,
        pin_factory: Any,
        pull_up: bool = True,
        bounce_s: float = 0.05,
        on_change: Callable[[DoorTransition], None] | None = None,
    ):
        from gpiozero import Button

        self._on_change = on_change
        try:
            self._button = Button(
                pin, pull_up=pull_up, bounce_time=bounce_s or None, pin_factory=pin_factory
            )
        except Exception as exc:
            raise HardwareError(f"cannot use GPIO {pin} for the door switch: {exc}",
                                device=f"gpio{pin}") from exc
        # gpiozero calls these on its own thread; consumers hop back to their loop.
        self._button.when_pressed = lambda: self._emit(False)
        self._button.when_released = lambda: self._emit(True)

    @property
    def pin(self) -> Any:
        """The gpiozero pin object (a MockPin in simulation, to drive the door)."""
        return self._button.pin

    @property
    def is_open(self) -> bool:
        """Whether the door is open now."""
        return not bool(self._button.is_pressed)

    def _emit(self, is_open: bool) -> None:
        if self._on_change is not None:
            self._on_change(DoorTransition(is_open=is_open, at=time.monotonic()))

    def close(self) -> None:
        """Release the pin."""
        self._button.close()
