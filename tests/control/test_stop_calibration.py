"""STOP ALL during a calibration: it ends at once, the pipette stays where it stopped (no
return to its start), the others are not calibrated, nothing moves until the operator
re-arms, and no state machine error escapes."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from patchpilot.control import PipetteState
from patchpilot.control.stop_signal import CalibrationAborted, StopSignal
from tests.control.conftest import SimRig


def _moves(rig: SimRig, after_seq: int = 0) -> list[dict[str, Any]]:
    return [
        e
        for e in rig.log.tail(20000, kind="command")
        if e["message"] == "move" and e["seq"] > after_seq
    ]


def _stop_seq(rig: SimRig) -> int:
    stops = [e for e in rig.log.tail(20000, kind="operator") if e["message"] == "stop all"]
    assert len(stops) == 1
    return int(stops[0]["seq"])


def test_stop_all_from_another_thread_ends_the_calibration_at_once(rig: SimRig) -> None:
    """The panel's thread presses STOP ALL while the calibration thread steps P1."""
    outcomes: dict[str, Any] = {}
    errors: list[BaseException] = []

    def calibrate() -> None:
        try:
            outcomes.update(rig.controller.calibrate_all())
        except BaseException as exc:  # any escape is a failure of the test
            errors.append(exc)

    thread = threading.Thread(target=calibrate)
    thread.start()
    deadline = time.monotonic() + 60.0
    while len(_moves(rig)) < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(_moves(rig)) >= 4, "the calibration never started moving"
    rig.controller.stop_all()
    tip_at_stop = rig.true_tip("P1")  # the clock only runs on in that thread: read it now
    thread.join(timeout=30.0)
    assert not thread.is_alive() and not errors, errors
    stopped_at = _stop_seq(rig)
    assert _moves(rig, stopped_at) == []  # not back to its start, nothing at all
    assert outcomes["P1"].verdict == "stopped" and "STOP ALL" in outcomes["P1"].reason
    assert all(outcomes[n].verdict == "stopped" for n in ("P2", "P3", "P4"))
    assert all(u.state is PipetteState.STOPPED for u in rig.controller.units.values())
    assert rig.controller.state.value == "stopped"
    rig.run(2.0, until_idle=False)  # frames keep coming: still nothing moves
    assert _moves(rig, stopped_at) == []
    # It stopped where it was (braking only), not back at its start.
    assert np.linalg.norm(rig.true_tip("P1") - tip_at_stop) < 5.0
    with pytest.raises(ValueError, match="re-arm first"):
        rig.controller.calibrate_all()
    rig.controller.rearm()
    assert rig.controller.state.value == "idle"
    assert rig.controller.units["P1"].state is PipetteState.IDLE
    outcome = rig.controller.calibrate("P2")  # re-armed: calibration works again
    assert outcome.accepted, outcome.reason


def test_stop_all_during_a_calibration_move(rig: SimRig) -> None:
    """STOP ALL pressed while a calibration move is under way (from the imaging thread)."""
    pressed: list[int] = []
    snap = rig.imaging.snap

    def snap_and_press(focus_um: float | None = None) -> Any:
        result = snap(focus_um)
        if not pressed and len(_moves(rig)) >= 8:
            pressed.append(1)
            rig.controller.stop_all()
        return result

    rig.imaging.snap = snap_and_press  # type: ignore[method-assign]
    outcomes = rig.controller.calibrate_all(["P3", "P4"])
    assert pressed
    assert outcomes["P3"].verdict == "stopped" and outcomes["P4"].verdict == "stopped"
    assert _moves(rig, _stop_seq(rig)) == []
    assert rig.controller.units["P3"].calibration is None


def test_the_gate_refuses_once_stopped() -> None:
    signal = StopSignal()
    with signal.gate():
        pass
    signal.set()
    with pytest.raises(CalibrationAborted), signal.gate():
        pytest.fail("a move was let through after the stop")
    signal.clear()
    signal.check()


def test_a_stop_waits_for_a_move_being_sent_then_refuses_the_next() -> None:
    """``set`` takes the gate's lock: a move being sent finishes first, none follows."""
    signal = StopSignal()
    order: list[str] = []
    inside = threading.Event()

    def send() -> None:
        with signal.gate():
            inside.set()
            time.sleep(0.05)
            order.append("sent")

    sender = threading.Thread(target=send)
    sender.start()
    inside.wait(5.0)
    signal.set()
    order.append("stopped")
    sender.join(5.0)
    assert order == ["sent", "stopped"]
    with pytest.raises(CalibrationAborted):
        signal.check()
