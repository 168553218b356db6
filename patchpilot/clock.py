"""Clocks: the real one, and a simulated one that runs faster than real time for tests.

Everything that waits or timestamps takes a ``Clock`` so that simulated hardware, the
controller and timeouts can run on simulated time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock", "SimClock"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock (monotonic)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock's time pass."""
        ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait for ``event`` at most ``timeout_s`` of this clock's time; True if it was set."""
        ...


class RealClock:
    """Wall-clock time (``time.monotonic``)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(0.0, timeout_s))


class SimClock:
    """Simulated time that only moves when someone sleeps or advances it.

    ``sleep`` advances the clock at once (faster than real time). ``wait`` advances in
    ``step_s`` increments until the event is set or the timeout passes, yielding briefly to
    other threads each step so that background workers keep up.
    """

    def __init__(self, start: float = 0.0, step_s: float = 0.005) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._step_s = step_s

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards ({seconds} s)")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)
        time.sleep(0)  # let other threads run

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        deadline = self.now() + max(0.0, timeout_s)
        while not event.is_set():
            remaining = deadline - self.now()
            if remaining <= 0:
                return event.is_set()
            self.advance(min(self._step_s, remaining))
            event.wait(0.0005)
        return True
