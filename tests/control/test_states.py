"""The state machines as tables: valid triggers go where the table says, others raise, and
every transition is written to the event log."""

from __future__ import annotations

import pytest
from transitions import MachineError

from patchpilot.control.states import (
    COORDINATOR_TRANSITIONS,
    PIPETTE_TRANSITIONS,
    CoordinatorState,
    PipetteState,
)
from tests.control.conftest import SimRig

S = PipetteState

CASES = [
    (S.IDLE, "calibrate", S.CALIBRATING),
    (S.CALIBRATING, "calibration_failed", S.READY),  # keeps its earlier calibration
    (S.READY, "start_move", S.MOVING),
    (S.MOVING, "reach_checkpoint", S.CORRECTING),
    (S.CORRECTING, "advance", S.APPROACHING),
    (S.APPROACHING, "need_correction", S.CORRECTING),
    (S.CORRECTING, "reach_target", S.AT_TARGET),
    (S.AT_TARGET, "start_move", S.MOVING),
    (S.MOVING, "arrive", S.READY),
    (S.APPROACHING, "pause", S.PAUSED),
    (S.PAUSED, "replan", S.READY),
    (S.APPROACHING, "take_over", S.MANUAL),
    (S.MANUAL, "release", S.READY),
    (S.CORRECTING, "fail", S.FAULT),
    (S.FAULT, "clear_fault", S.READY),
    (S.MANUAL, "stop", S.STOPPED),
    (S.STOPPED, "rearm", S.READY),
]

INVALID = [
    (S.IDLE, "start_move"),
    (S.MOVING, "reach_target"),
    (S.STOPPED, "take_over"),
    (S.FAULT, "pause"),
    (S.AT_TARGET, "advance"),
    (S.MANUAL, "start_move"),
]


@pytest.mark.parametrize(("state", "trigger", "expected"), CASES)
def test_valid_triggers(
    rig: SimRig, state: PipetteState, trigger: str, expected: PipetteState
) -> None:
    rig.give_true_calibration()
    unit = rig.controller.units["P1"]
    rig.controller.coordinator.pipette_machine.set_state(state, model=unit)
    before = len(rig.log.tail(10000, kind="transition"))
    getattr(unit, trigger)()
    assert unit.state is expected
    records = rig.log.tail(10000, kind="transition")
    assert len(records) == before + 1
    assert records[-1]["source"] == "P1" and records[-1]["trigger"] == trigger
    assert records[-1]["dest_state"] == expected.value
    assert records[-1]["message"] == f"{state.value} -> {expected.value}"


@pytest.mark.parametrize(("state", "trigger"), INVALID)
def test_invalid_triggers_raise(rig: SimRig, state: PipetteState, trigger: str) -> None:
    unit = rig.controller.units["P1"]
    rig.controller.coordinator.pipette_machine.set_state(state, model=unit)
    with pytest.raises(MachineError):
        getattr(unit, trigger)()
    assert unit.state is state


def test_conditions_depend_on_the_calibration(rig: SimRig) -> None:
    unit = rig.controller.units["P1"]
    machine = rig.controller.coordinator.pipette_machine
    machine.set_state(S.MANUAL, model=unit)
    unit.release()
    assert unit.state is S.IDLE  # nothing known about it: not ready for automation
    machine.set_state(S.STOPPED, model=unit)
    unit.rearm()
    assert unit.state is S.IDLE
    machine.set_state(S.CALIBRATING, model=unit)
    unit.calibration_failed()
    assert unit.state is S.IDLE


def test_stop_from_every_state(rig: SimRig) -> None:
    unit = rig.controller.units["P2"]
    for state in PipetteState:
        rig.controller.coordinator.pipette_machine.set_state(state, model=unit)
        unit.stop()
        assert unit.state is S.STOPPED
    coordinator = rig.controller.coordinator
    for state in CoordinatorState:
        coordinator.machine.set_state(state)
        coordinator.stop_all()
        assert coordinator.state is CoordinatorState.STOPPED


def test_tables_are_consistent() -> None:
    for table, states in (
        (PIPETTE_TRANSITIONS, set(PipetteState)),
        (COORDINATOR_TRANSITIONS, set(CoordinatorState)),
    ):
        for row in table:
            sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
            for source in sources:
                assert source == "*" or source in states
            assert row["dest"] in states
    every_state_reachable = {row["dest"] for row in PIPETTE_TRANSITIONS} | {S.IDLE}
    assert every_state_reachable == set(PipetteState)
