"""STOP ALL as a signal that blocking procedures (the calibration) obey at once.

The controller sets it before it stops the devices; a procedure checks it before every
snapshot and sends every move through ``gate``, which holds the same lock as ``set``. So a
move is either sent before the stop was signalled (and the stop that follows halts it), or
never: nothing moves after STOP ALL until the operator re-arms (``clear``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from patchpilot.control.calibration import CalibrationError

__all__ = ["CalibrationAborted", "StopSignal"]


class CalibrationAborted(CalibrationError):
    """The calibration ended because STOP ALL was pressed (nothing moves afterwards)."""


class StopSignal:
    """Set by STOP ALL, cleared by re-arming (see the module docstring)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()

    def set(self, timeout_s: float = 0.5) -> None:
        """Signal the stop. Waits at most ``timeout_s`` for a move being sent (never hangs)."""
        acquired = self._lock.acquire(timeout=timeout_s)
        try:
            self._event.set()
        finally:
            if acquired:
                self._lock.release()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``CalibrationAborted`` if the stop was signalled."""
        if self._event.is_set():
            raise CalibrationAborted("stopped by STOP ALL")

    @contextmanager
    def gate(self) -> Iterator[None]:
        """Hold while sending a move: refused (``CalibrationAborted``) once stopped."""
        with self._lock:
            self.check()
            yield
