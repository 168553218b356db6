"""Checks against a REAL rig, skipped unless ``PATCHPILOT_RIG_CONFIG`` names its rig file.

    PATCHPILOT_RIG_CONFIG=configs/my-rig.yaml .venv/bin/pytest -m hardware tests/hardware

Read-only (identify, position, busy) unless ``PATCHPILOT_RIG_ALLOW_MOVES=1``: then each
manipulator also moves 5 µm along x at 100 µm/s and back. Pipettes out of the bath, please.
"""

from __future__ import annotations

import os

import pytest

from patchpilot.clock import RealClock
from patchpilot.config import load_config
from patchpilot.events import EventLog
from patchpilot.hardware import MoveStatus, create_manipulator

RIG_FILE = os.environ.get("PATCHPILOT_RIG_CONFIG")
pytestmark = [
    pytest.mark.hardware,
    pytest.mark.skipif(RIG_FILE is None, reason="set PATCHPILOT_RIG_CONFIG to test a real rig"),
]


def _pipette_names() -> list[str]:
    if RIG_FILE is None:
        return []
    return [pipette.name for pipette in load_config(RIG_FILE).pipettes]


@pytest.mark.parametrize("name", _pipette_names())
def test_each_manipulator_answers_and_moves_when_allowed(name: str) -> None:
    assert RIG_FILE is not None
    pipette = load_config(RIG_FILE).pipette(name)
    manipulator = create_manipulator(pipette, log=EventLog(), clock=RealClock())
    try:
        info = manipulator.identify()
        assert info.n_axes == manipulator.n_axes
        start = manipulator.position_um()
        assert len(start) == manipulator.n_axes
        assert not manipulator.is_busy()
        if os.environ.get("PATCHPILOT_RIG_ALLOW_MOVES") == "1":
            there = manipulator.move_by([5.0, 0.0, 0.0], 100.0)
            assert there.wait(10.0) is MoveStatus.FINISHED, there.reason
            back = manipulator.move_to(start, 100.0)
            assert back.wait(10.0) is MoveStatus.FINISHED, back.reason
    finally:
        manipulator.close()
