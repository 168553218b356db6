"""Correction runs on a stand-in pipette and camera: convergence in bounded steps, a tip
that does not follow its commands, a lost tip, and telling an uncertain tip from a decoy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from patchpilot.control.correction import (
    ActionKind,
    CorrectionRun,
    Sighting,
    line_deviation_um,
)
from patchpilot.control.tracking import TipMatch
from patchpilot.types import Frame, TipDetection, pipette_axis
from tests.control.sim_imaging import draw_shank

Vector = np.ndarray[Any, Any]


class StandIn:
    """A pipette whose calibration is the identity but whose tip sits ``true_offset`` away;
    with a camera that renders its tip (and a decoy) and finds them with noise."""

    axis = pipette_axis(30.0, 0.0)

    def __init__(
        self,
        tip: Vector,
        true_offset: Vector,
        decoy: Vector | None = None,
        *,
        obeys: bool = True,
        visible: bool = True,
        seed: int = 0,
    ) -> None:
        self.device = np.asarray(tip, float) - true_offset
        self.true_offset = np.asarray(true_offset, float)
        self.offset = np.zeros(3)
        self.decoy = decoy
        self.obeys = obeys
        self.visible = visible
        self.rng = np.random.default_rng(seed)
        self.steps: list[float] = []
        self.index = 0

    # CorrectionSubject
    def predicted_tip_um(self) -> Vector:
        return self.device.copy()

    def expected_tip_um(self) -> Vector:
        return self.device + self.offset

    def set_tip_offset(self, offset_um: Vector, sigma_um: float) -> None:
        self.offset = np.asarray(offset_um, float)

    def device_target_um(self, sample_um: Vector) -> Vector:
        return np.asarray(sample_um, float) - self.offset

    def device_position_um(self) -> Vector:
        return self.device.copy()

    def device_step_to_sample_um(self, step_um: Vector) -> Vector:
        return np.asarray(step_um, float)

    def sample_step_to_device_um(self, step_um: Vector) -> Vector:
        return np.asarray(step_um, float)

    def search_radius_um(self) -> float:
        return 60.0

    # the world
    @property
    def tip(self) -> Vector:
        return self.device + self.true_offset

    def move(self, target: Vector) -> None:
        self.steps.append(float(np.linalg.norm(target - self.device)))
        if self.obeys:
            self.device = np.asarray(target, float)

    def sighting(self, focus_um: float) -> Sighting:
        self.index += 1
        image = 50.0 + self.rng.normal(0, 2.0, (128, 128))
        frame = Frame(image, self.index, self.index / 30, 1.0, (0.0, 0.0), focus_um)
        found = []
        for tip in [self.tip] + ([self.decoy] if self.decoy is not None else []):
            draw_shank(image, frame, tip, 30.0, 0.0)
            if self.visible and abs(tip[2] - focus_um) < 6.0:
                found.append(tip[:2] + self.rng.normal(0, 0.4, 2))
        candidates = tuple(found)
        match = None
        expected = self.expected_tip_um()
        if found:
            nearest = min(found, key=lambda xy: float(np.linalg.norm(xy - expected[:2])))
            if np.linalg.norm(nearest - expected[:2]) < 30:
                detection = TipDetection(0.0, 0.0, 0.0, 0.0, 0.9)
                match = TipMatch("P", np.array([*nearest, expected[2]]), expected, detection, False)
        return Sighting(frame, match, candidates)


def run_until_done(run: CorrectionRun, pipette: StandIn, frames: int = 3000) -> Any:
    focus = 0.0
    for _ in range(frames):
        action = run.on_frame(pipette.sighting(focus), pipette)
        if action.kind is ActionKind.FOCUS:
            focus = action.focus_um
        elif action.kind is ActionKind.MOVE:
            pipette.move(action.device_target_um)
            run.move_ended(True)
        elif action.kind in (ActionKind.CONVERGED, ActionKind.FAILED):
            return action
    raise AssertionError("the run never ended")


def test_converges_in_bounded_steps() -> None:
    goal = np.array([0.0, 0.0, 20.0])
    pipette = StandIn(goal + np.array([22.0, -18.0, 9.0]), true_offset=np.array([5.0, 5.0, -2.0]))
    run = CorrectionRun("P", goal, 1.0, 10.0, 15)
    action = run_until_done(run, pipette)
    assert action.kind is ActionKind.CONVERGED
    assert np.linalg.norm(pipette.tip - goal) <= 1.2
    assert len(pipette.steps) >= 3 and max(pipette.steps) <= 10.0 + 1e-6
    assert run.errors_um[0] > 25 and run.errors_um[-1] <= 1.0


def test_a_tip_that_does_not_follow_is_given_up() -> None:
    goal = np.array([0.0, 0.0, 20.0])
    pipette = StandIn(goal + np.array([15.0, 0.0, 0.0]), np.zeros(3), obeys=False)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15), pipette)
    assert action.kind is ActionKind.FAILED and "keeps growing" in action.reason


def test_a_tip_never_seen_is_lost() -> None:
    goal = np.array([0.0, 0.0, 20.0])
    pipette = StandIn(goal, np.zeros(3), visible=False)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15), pipette)
    assert action.kind is ActionKind.FAILED and "tip lost" in action.reason
    assert pipette.steps == []  # nothing moved while looking


def test_measure_only_moves_nothing() -> None:
    here = np.array([5.0, 5.0, 30.0])
    pipette = StandIn(here, np.array([3.0, -2.0, 1.5]))
    run = CorrectionRun("P", pipette.expected_tip_um(), 1.0, 10.0, 15, measure_only=True)
    action = run_until_done(run, pipette)
    assert action.kind is ActionKind.CONVERGED and pipette.steps == []
    np.testing.assert_allclose(pipette.expected_tip_um(), pipette.tip, atol=0.6)


def test_uncertain_tip_is_told_from_a_decoy_by_backing_out() -> None:
    """The decoy (another pipette's tip) sits closer to where ours is expected."""
    ours = np.array([30.0, 0.0, 40.0])
    decoy = np.array([-6.0, 2.0, 40.0])
    pipette = StandIn(ours, np.array([30.0, 0.0, 0.0]), decoy=decoy)
    run = CorrectionRun(
        "P", pipette.expected_tip_um(), 1.0, 10.0, 15, measure_only=True, confirm_identity=True
    )
    action = run_until_done(run, pipette)
    assert action.kind is ActionKind.CONVERGED
    np.testing.assert_allclose(pipette.expected_tip_um(), pipette.tip, atol=0.7)
    assert len(pipette.steps) >= 2  # backed out at least once per candidate
    assert all(s == pytest.approx(12.0) for s in pipette.steps)


def test_near_the_edge_a_checkpoint_corrects_sideways_but_the_end_fails() -> None:
    """The goal 6 µm inside the 128 µm frame's left edge (x = -63.5 µm): the shank (yaw 0,
    behind the tip toward -x) leaves the image, so no depth sweep is possible there."""
    goal = np.array([-57.5, 0.0, 20.0])
    offset = np.array([4.0, 3.0, 0.0])
    on_the_way = StandIn(goal + offset, offset)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15, final=False), on_the_way)
    assert action.kind is ActionKind.CONVERGED
    assert np.linalg.norm(on_the_way.tip[:2] - goal[:2]) <= 1.2  # corrected sideways
    at_the_end = StandIn(goal + offset, offset)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15), at_the_end)
    assert action.kind is ActionKind.FAILED and "leaves the image" in action.reason
    assert at_the_end.steps == []


def test_an_error_stuck_just_above_tolerance_is_enough_only_on_the_way() -> None:
    """Steps lost in backlash: the tip does not follow 1 µm corrections."""
    goal = np.array([0.0, 0.0, 20.0])
    stuck = np.array([1.5, 0.0, 0.0])
    on_the_way = StandIn(goal + stuck, np.zeros(3), obeys=False)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15, final=False), on_the_way)
    assert action.kind is ActionKind.CONVERGED and action.error_um <= 2.0
    at_the_end = StandIn(goal + stuck, np.zeros(3), obeys=False)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15), at_the_end)
    assert action.kind is ActionKind.FAILED and "keeps growing" in action.reason
    far = StandIn(goal + 3 * stuck, np.zeros(3), obeys=False)
    action = run_until_done(CorrectionRun("P", goal, 1.0, 10.0, 15, final=False), far)
    assert action.kind is ActionKind.FAILED  # 4.5 µm is not close enough anywhere


def test_line_deviation() -> None:
    assert line_deviation_um(
        np.array([0.0, 3.0, 0.0]), np.zeros(3), np.array([10.0, 0, 0])
    ) == pytest.approx(3.0)
    assert line_deviation_um(np.array([1.0, 1.0, 0.0]), np.zeros(3), np.zeros(3)) == pytest.approx(
        math.sqrt(2)
    )
