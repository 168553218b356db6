"""Clocks (``patchpilot/clock.py``, owned with the hardware): scheduling, waiting, order."""

from __future__ import annotations

import threading
import time

import pytest

from patchpilot.clock import Clock, RealClock, SimClock


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(SimClock(), Clock)


def test_sim_timers_run_in_order_at_their_due_time() -> None:
    clock = SimClock(start=10.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(0.3, lambda: seen.append(("c", clock.now())))
    clock.call_later(0.1, lambda: seen.append(("a", clock.now())))
    clock.call_later(0.1, lambda: seen.append(("b", clock.now())))
    cancelled = clock.call_later(0.2, lambda: seen.append(("x", clock.now())))
    cancelled.cancel()
    clock.advance(0.25)
    assert seen == [("a", 10.1), ("b", 10.1)]
    assert clock.now() == pytest.approx(10.25)
    clock.advance(1.0)
    assert seen[-1][0] == "c" and seen[-1][1] == pytest.approx(10.3)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)


def test_timers_scheduled_from_timers_run_in_the_same_advance() -> None:
    clock = SimClock()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.now())
        if len(ticks) < 5:
            clock.call_later(0.01, tick)

    clock.call_later(0.01, tick)
    clock.advance(1.0)
    assert ticks == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])


def test_sim_wait_jumps_to_the_event_without_real_sleeping() -> None:
    clock = SimClock(step_s=0.005)
    event = threading.Event()
    clock.call_later(42.0, event.set)
    started = time.monotonic()
    assert clock.wait(event, 100.0)
    assert clock.now() == pytest.approx(42.0)
    assert not clock.wait(threading.Event(), 0.5)
    assert clock.now() == pytest.approx(42.5)
    assert time.monotonic() - started < 5.0  # 42 simulated seconds, no real sleeping


def test_a_failing_timer_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    clock = SimClock()
    seen: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    clock.call_later(0.1, broken)
    clock.call_later(0.2, lambda: seen.append(1))
    clock.advance(1.0)
    assert seen == [1]
    assert "clock timer callback failed" in caplog.text


def test_real_timers_run_in_real_time() -> None:
    clock = RealClock()
    fired = threading.Event()
    started = clock.now()
    clock.call_later(0.05, fired.set)
    assert clock.wait(fired, 2.0)
    assert clock.now() - started >= 0.05
    never = threading.Event()
    late = clock.call_later(0.01, never.set)
    late.cancel()
    assert not clock.wait(never, 0.1)
