"""Clocks: the real one, and a simulated one that runs faster than real time.

Everything that waits, times out or timestamps takes a ``Clock`` so that simulated hardware,
the controller and timeouts can run on simulated time.

A clock is also a small scheduler: ``call_later(delay_s, fn)`` runs ``fn`` once that much clock
time has passed. Simulated devices use it to resolve moves:

- ``RealClock`` runs callbacks on one shared background thread, in real time.
- ``SimClock`` runs them inside ``advance``/``sleep``/``wait``, in the advancing thread, at
  exactly their due time (``now()`` equals the due time while a callback runs), in due-time
  order. Nothing happens between advances, so a run driven by one thread is deterministic.

Timer callbacks must be short and must not advance the clock themselves.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock", "SimClock", "Timer"]

_logger = logging.getLogger(__name__)
_IDLE_WAKE_S = 1.0  # the real scheduler re-checks its queue at least this often


class Timer:
    """A callback scheduled on a clock; ``cancel()`` prevents it from running."""

    __slots__ = ("_callback", "_cancelled", "due_s")

    def __init__(self, due_s: float, callback: Callable[[], None]) -> None:
        self.due_s = due_s
        self._callback = callback
        self._cancelled = False

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    def _run(self) -> None:
        if self._cancelled:
            return
        try:
            self._callback()
        except Exception:  # a failing callback must not kill the scheduler
            _logger.exception("clock timer callback failed")


@runtime_checkable
class Clock(Protocol):
    """A time source that can wait and schedule callbacks (seconds, monotonic)."""

    def now(self) -> float:
        """Seconds on this clock (monotonic)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of this clock's time pass."""
        ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait for ``event`` at most ``timeout_s`` of this clock's time; True if it was set."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` once after ``delay_s`` seconds of this clock's time."""
        ...


class _Queue:
    """A heap of timers ordered by due time, then by insertion."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()

    def push(self, timer: Timer) -> None:
        heapq.heappush(self._heap, (timer.due_s, next(self._counter), timer))

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].is_cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, until_s: float) -> Timer | None:
        due = self.next_due()
        if due is None or due > until_s:
            return None
        return heapq.heappop(self._heap)[2]


class _RealScheduler:
    """One daemon thread that runs ``RealClock`` timers when they fall due."""

    def __init__(self) -> None:
        self._queue = _Queue()
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="patchpilot-clock", daemon=True)
        self._thread.start()

    def schedule(self, timer: Timer) -> None:
        with self._condition:
            self._queue.push(timer)
            self._condition.notify()

    def _run(self) -> None:
        while self._thread.is_alive():
            with self._condition:
                timer = self._queue.pop_due(time.monotonic())
                if timer is None:
                    due = self._queue.next_due()
                    delay = _IDLE_WAKE_S if due is None else due - time.monotonic()
                    self._condition.wait(timeout=min(max(delay, 0.0), _IDLE_WAKE_S))
                    continue
            timer._run()


_scheduler: _RealScheduler | None = None
_scheduler_lock = threading.Lock()


def _real_scheduler() -> _RealScheduler:
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            _scheduler = _RealScheduler()
        return _scheduler


class RealClock:
    """Wall-clock time (``time.monotonic``); timers run on a shared background thread."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(0.0, timeout_s))

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay_s), callback)
        _real_scheduler().schedule(timer)
        return timer


class SimClock:
    """Simulated time that only moves when someone sleeps, waits or advances it.

    ``advance`` and ``sleep`` move time at once (faster than real time), running due timers on
    the way. ``wait`` advances to the next due timer (or by ``step_s`` when none is due sooner)
    until the event is set or the timeout passes, so waiting on a simulated move resolves it
    deterministically without any real sleeping.

    Parameters
    ----------
    start
        Initial time (s).
    step_s
        Largest single advance inside ``wait`` when no timer is due sooner (s); between steps
        ``wait`` yields to other threads.
    """

    def __init__(self, start: float = 0.0, step_s: float = 0.005) -> None:
        if not step_s > 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        self._now = start
        self._step_s = step_s
        self._lock = threading.Lock()  # guards _now and the queue
        self._advance_lock = threading.RLock()  # one advancing thread at a time
        self._queue = _Queue()

    def now(self) -> float:
        with self._lock:
            return self._now

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        with self._lock:
            timer = Timer(self._now + max(0.0, delay_s), callback)
            self._queue.push(timer)
        return timer

    def next_due_s(self) -> float | None:
        """When the next timer falls due (clock time), or None."""
        with self._lock:
            return self._queue.next_due()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every timer that falls due."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards ({seconds} s)")
        with self._advance_lock:
            self.advance_to(self.now() + seconds)

    def advance_to(self, when_s: float) -> None:
        """Move time forward to ``when_s`` (no-op if already past), running due timers."""
        with self._advance_lock:
            while True:
                with self._lock:
                    timer = self._queue.pop_due(when_s)
                    if timer is None:
                        self._now = max(self._now, when_s)
                        return
                    self._now = max(self._now, timer.due_s)
                timer._run()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)
        time.sleep(0)  # let other threads run

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        deadline = self.now() + max(0.0, timeout_s)
        while not event.is_set():
            now = self.now()
            if now >= deadline:
                return False
            step_to = min(deadline, now + self._step_s)
            due = self.next_due_s()
            if due is not None:
                step_to = min(step_to, max(due, now))
            self.advance_to(step_to)
            time.sleep(0)  # yield: an event may also be set by another thread
        return True
