"""The Manipulator interface: refusals before anything is sent, handles, stop and stop-all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from patchpilot.clock import SimClock
from patchpilot.events import EventLog
from patchpilot.hardware import (
    CommunicationError,
    LimitError,
    MoveHandle,
    MoveRefused,
    MoveStatus,
    SimFault,
    SpeedError,
    stop_all,
)
from patchpilot.hardware.simulated import SimulatedManipulator

from .conftest import make_pipette

Make = Callable[..., SimulatedManipulator]
NAN = float("nan")


def _moves_sent(sim: SimulatedManipulator) -> list[str]:
    return [command for _, command in sim.device.wire_log if command.startswith("move")]


@pytest.mark.parametrize(
    ("target", "speed", "error", "message"),
    [
        ([10000.0, NAN, 10000.0], 100.0, MoveRefused, "non-finite axis"),
        ([10000.0, 10000.0, float("inf")], 100.0, MoveRefused, "non-finite axis"),
        ([10000.0, 10000.0], 100.0, MoveRefused, "target has 2 axes"),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 100.0, MoveRefused, "target has 5 axes"),
        (["a", 1.0, 2.0], 100.0, MoveRefused, "not numeric"),
        ([10000.0, 25000.0, 10000.0], 100.0, LimitError, "axis 1 target 25000.00 µm"),
        ([-0.5, 10000.0, 10000.0], 100.0, LimitError, "axis 0"),
        ([10000.0, 10000.0, 10000.0], 2500.0, SpeedError, "exceeds the maximum 2000"),
        ([10000.0, 10000.0, 10000.0], 0.0, SpeedError, "positive"),
        ([10000.0, 10000.0, 10000.0], -5.0, SpeedError, "positive"),
        ([10000.0, 10000.0, 10000.0], NAN, SpeedError, "positive and finite"),
    ],
)
def test_bad_moves_are_refused_logged_and_nothing_is_sent(
    make_sim: Make,
    log: EventLog,
    target: list[object],
    speed: float,
    error: type[Exception],
    message: str,
) -> None:
    sim = make_sim()
    with pytest.raises(error, match=message):
        sim.move_to(target, speed)  # type: ignore[arg-type]
    assert _moves_sent(sim) == []
    assert sim.current_move is None
    record = log.tail(1)[0]
    assert record["kind"] == "fault" and record["message"] == "move refused"
    assert message.split()[0] in record["reason"]
    assert not sim.is_busy()


@pytest.mark.parametrize(
    ("step", "speed", "message"),
    [
        ([NAN, 0.0, 0.0], 100.0, "non-finite"),
        ([1.0, 0.0, 0.0, 0.0], 100.0, "step has 4 axes"),
        ([1.0, 0.0], 100.0, "step has 2 axes"),
        ([20000.0, 0.0, 0.0], 100.0, "outside the soft limits"),
        ([1.0, 0.0, 0.0], 1e9, "exceeds the maximum"),
    ],
)
def test_bad_relative_moves_are_refused(
    make_sim: Make, step: list[float], speed: float, message: str
) -> None:
    sim = make_sim()
    with pytest.raises(MoveRefused, match=message):
        sim.move_by(step, speed)
    assert _moves_sent(sim) == []


def test_a_minimum_speed_is_enforced_before_sending(make_sim: Make) -> None:
    sim = make_sim()
    sim.min_speed_um_s = 1.0
    with pytest.raises(SpeedError, match="below the device's minimum 1"):
        sim.move_by([1.0, 0.0, 0.0], 0.5)
    assert _moves_sent(sim) == []


def test_an_axis_without_soft_limits_may_not_move(make_sim: Make) -> None:
    sim = make_sim(readout_noise_um=0.0, n_axes=4, initial_position_um=(10000.0,) * 4)
    assert len(sim.limits.min_um) == 3
    with pytest.raises(LimitError, match="axis 3 has no soft limits"):
        sim.move_to([10000.0, 10000.0, 10000.0, 10100.0], 100.0)
    assert _moves_sent(sim) == []
    # the same axis kept where it is, or left out, is fine
    assert sim.move_to([10010.0, 10000.0, 10000.0, 10000.0], 100.0).wait(2.0).value == "finished"
    handle = sim.move_to([10000.0, 10000.0, 10000.0], 100.0)
    assert handle.target_um == (10000.0, 10000.0, 10000.0, 10000.0)
    assert handle.wait(2.0) is MoveStatus.FINISHED


def test_every_command_is_logged(make_sim: Make, log: EventLog) -> None:
    sim = make_sim()
    sim.identify()
    sim.move_to([10050.0, 10000.0, 10000.0], 500.0).wait(2.0)
    sim.stop()
    kinds = [(e["kind"], e["message"]) for e in log.tail(10)]
    assert kinds == [
        ("info", "identified"),
        ("command", "move"),
        ("info", "move finished"),
        ("command", "stop"),
    ]
    assert log.tail(3)[0]["target_um"] == [10050.0, 10000.0, 10000.0]


def test_wait_needs_a_finite_timeout_and_reports_pending(
    make_sim: Make, sim_clock: SimClock
) -> None:
    sim = make_sim()
    handle = sim.move_by([500.0, 0.0, 0.0], 100.0)
    for bad in (-1.0, NAN, float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            handle.wait(bad)
    assert handle.wait(0.5) is MoveStatus.PENDING
    assert sim_clock.now() == pytest.approx(0.5)
    seen: list[MoveStatus] = []
    handle.add_done_callback(lambda h: seen.append(h.status))
    assert handle.wait(10.0) is MoveStatus.FINISHED
    assert seen == [MoveStatus.FINISHED]
    handle.add_done_callback(lambda h: seen.append(h.status))  # already done: runs at once
    assert seen == [MoveStatus.FINISHED, MoveStatus.FINISHED]


def test_a_failed_stop_fails_the_move(make_sim: Make, log: EventLog) -> None:
    sim = make_sim()
    handle = sim.move_by([500.0, 0.0, 0.0], 100.0)
    sim.inject_fault(SimFault.LINK_LOST)
    with pytest.raises(CommunicationError):
        sim.stop()
    assert handle.status is MoveStatus.FAILED
    assert "may still be moving" in handle.reason
    assert log.tail(1)[0]["message"] == "stop failed"


def test_close_interrupts_a_pending_move(make_sim: Make) -> None:
    sim = make_sim()
    handle = sim.move_by([500.0, 0.0, 0.0], 100.0)
    sim.close()
    assert handle.status is MoveStatus.INTERRUPTED and handle.reason == "driver closed"


class _HangingStop(SimulatedManipulator):
    """A device whose stop never comes back (a hung USB link)."""

    released = threading.Event()

    def _send_stop(self) -> None:
        self.released.wait(timeout=30.0)


def test_stop_all_reaches_everyone_even_when_one_fails_and_one_hangs(
    make_sim: Make, log: EventLog, sim_clock: SimClock
) -> None:
    healthy = [make_sim(name=f"ok{i}") for i in range(3)]
    broken = make_sim(name="broken")
    broken.inject_fault(SimFault.LINK_LOST)
    hung = _HangingStop.from_config(make_pipette("hung"), log=log, clock=sim_clock)
    moves = [m.move_by([300.0, 0.0, 0.0], 100.0) for m in healthy]
    sim_clock.advance(0.5)
    started = time.monotonic()
    try:
        results = stop_all([healthy[0], broken, hung, healthy[1], healthy[2]], timeout_s=1.0)
    finally:
        _HangingStop.released.set()
    assert time.monotonic() - started < 3.0
    assert results["ok0"] is None and results["ok1"] is None and results["ok2"] is None
    assert results["broken"] is not None and "link down" in results["broken"]
    assert results["hung"] == "stop did not return within 1 s"
    assert all(m.status is MoveStatus.INTERRUPTED for m in moves)
    sim_clock.advance(0.5)
    assert not any(m.is_busy() for m in healthy)


def test_stop_all_of_nothing_is_nothing() -> None:
    assert stop_all([]) == {}


class _StopDuringStart(SimulatedManipulator):
    """A stop from another thread lands while the move command is on its way."""

    def _start_move(self, handle: MoveHandle) -> None:
        stopper = threading.Thread(target=self.stop)
        stopper.start()
        stopper.join(timeout=5.0)
        super()._start_move(handle)


def test_a_stop_racing_a_move_being_sent_still_stops_the_device(
    log: EventLog, sim_clock: SimClock
) -> None:
    racing = _StopDuringStart.from_config(make_pipette("race"), log=log, clock=sim_clock)
    handle = racing.move_by([500.0, 0.0, 0.0], 1000.0)
    assert handle.status is MoveStatus.INTERRUPTED
    sim_clock.advance(1.0)
    assert not racing.is_busy()
    assert racing.position_um()[0] < 10010.0  # the late move was braked at once
    assert [e.get("cause") for e in log.tail(kind="command")][-1] == (
        "stop arrived while a move was being sent"
    )
