"""Single-pipette plans: shape, speeds, axial-only in tissue, refusals with reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patchpilot.config import CylinderZone, RigConfig, SafetyConfig
from patchpilot.control.geometry import FieldOfView, ManipulatorTransform, PipetteGeometry
from patchpilot.control.planning import (
    CHECKPOINT_HEIGHT_UM,
    Phase,
    PlanError,
    WaypointReason,
    check_plan,
    plan_approach,
    plan_move_to,
    plan_retract,
    plan_verify,
)
from tests.control.conftest import true_transform

R = WaypointReason


@pytest.fixture
def p1(sim4: RigConfig) -> PipetteGeometry:
    return PipetteGeometry.from_config(sim4.pipette("P1"))


@pytest.fixture
def view(sim4: RigConfig) -> FieldOfView:
    return FieldOfView.from_microscope(sim4.microscope)


def _in_tissue_moves_are_axial(plan, geometry: PipetteGeometry, surface: float) -> None:  # type: ignore[no-untyped-def]
    for start, waypoint in plan.segments():
        if min(start[2], waypoint.position_um[2]) < surface:
            assert waypoint.in_tissue
            assert geometry.off_axis_um(waypoint.position_um - start) < 1e-6
            assert waypoint.speed_um_s == geometry.slow_speed_um_s


def test_approach_from_above(sim4: RigConfig, p1: PipetteGeometry, view: FieldOfView) -> None:
    safety = sim4.safety
    target = np.array([-20.0, -20.0, -60.0])
    plan = plan_approach(p1, (-95.0, -95.0, 60.0), target, safety, view=view)
    reasons = [w.reason for w in plan.waypoints]
    assert reasons == [
        R.RETRACT_AXIAL,
        R.LATERAL_ABOVE_LINE,
        R.DESCEND_TO_CHECKPOINT,
        R.DESCEND_TO_SURFACE,
        R.DESCEND_TO_APPROACH_START,
        R.ADVANCE_TO_STANDOFF,
    ]
    assert plan.phases() == (Phase.TRAVEL, Phase.INSERT)
    checkpoint = plan.waypoints[2]
    assert checkpoint.checkpoint and checkpoint.position_um[2] == pytest.approx(
        CHECKPOINT_HEIGHT_UM
    )
    lateral = plan.waypoints[1]
    assert lateral.position_um[2] == pytest.approx(safety.safe_height_um)
    np.testing.assert_allclose(plan.end_um, target - p1.axis * p1.standoff_um)
    approach_start = plan.waypoints[4].position_um
    assert np.linalg.norm(approach_start - target) == pytest.approx(safety.approach_distance_um)
    _in_tissue_moves_are_axial(plan, p1, safety.tissue_surface_z_um)
    text = plan.describe()
    assert "standoff" in text and "measure and correct here" in text and "(in tissue)" in text


def test_retract_from_tissue_is_axial_first(sim4: RigConfig, p1: PipetteGeometry) -> None:
    safety = sim4.safety
    start = np.array([-20.0, -20.0, -60.0])
    plan = plan_retract(p1, start, safety)
    assert [w.reason for w in plan.waypoints] == [R.RETRACT_AXIAL, R.RETRACT_AXIAL]
    assert plan.waypoints[0].position_um[2] == pytest.approx(safety.tissue_surface_z_um)
    assert plan.waypoints[0].speed_um_s == p1.slow_speed_um_s
    assert plan.end_um[2] == pytest.approx(safety.safe_height_um)
    for start_point, waypoint in plan.segments():
        assert p1.off_axis_um(waypoint.position_um - start_point) < 1e-6
    assert plan_retract(p1, (0.0, 0.0, 500.0), safety).waypoints == ()


def test_resume_inside_continues_along_the_line(sim4: RigConfig, p1: PipetteGeometry) -> None:
    target = np.array([0.0, 0.0, -80.0])
    halfway = target - p1.axis * 30.0
    plan = plan_approach(p1, halfway, target, sim4.safety)
    assert [w.reason for w in plan.waypoints] == [R.ADVANCE_TO_STANDOFF]
    assert plan.phases() == (Phase.INSERT,)
    off_line = halfway + np.array([0.0, 0.0, 6.0])  # 6 µm off the line: start over, safely
    plan = plan_approach(p1, off_line, target, sim4.safety)
    assert plan.waypoints[0].reason is R.RETRACT_AXIAL
    _in_tissue_moves_are_axial(plan, p1, sim4.safety.tissue_surface_z_um)


def test_uncertain_tip_is_measured_higher_and_inside_the_view(
    sim4: RigConfig, p1: PipetteGeometry, view: FieldOfView
) -> None:
    plan = plan_approach(
        p1, (-95.0, -95.0, 60.0), (0.0, 0.0, -80.0), sim4.safety, uncertainty_um=60.0, view=view
    )
    measured = [w for w in plan.waypoints if w.checkpoint]
    assert len(measured) == 1
    point = measured[0].position_um
    assert point[2] == pytest.approx(CHECKPOINT_HEIGHT_UM + 60.0)
    assert view.contains(point, 12.0 + 60.0 - 1e-6)
    reasons = [w.reason for w in plan.waypoints]
    assert R.DESCEND_TO_MEASURE_POINT in reasons and R.RETURN_TO_LINE in reasons
    verify = plan_verify(p1, (1.0, 2.0, 3.0))
    assert verify.phases() == (Phase.VERIFY,) and verify.waypoints[0].checkpoint


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ((500.0, 0.0, -50.0), "outside the field of view"),
        ((0.0, 0.0, 100.0), "above the checkpoint height"),
        ((0.0, math.nan, -50.0), "non-finite"),
    ],
)
def test_bad_targets_are_refused(
    sim4: RigConfig, p1: PipetteGeometry, view: FieldOfView, target: tuple[float, ...], message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        plan_approach(p1, (-95.0, -95.0, 60.0), target, sim4.safety, view=view)


def test_check_plan_limits_and_zones(sim4: RigConfig, p1: PipetteGeometry) -> None:
    transform = true_transform(sim4, "P1")
    plan = plan_approach(p1, (-95.0, -95.0, 60.0), (-20.0, -20.0, -60.0), sim4.safety)
    check_plan(plan, p1, transform, sim4.safety)
    shifted = ManipulatorTransform(transform.matrix, transform.offset_um + 2e4)
    with pytest.raises(
        PlanError, match=r"outside the soft limits \[0, 20000\]: target unreachable"
    ):
        check_plan(plan, p1, shifted, sim4.safety)
    vessel = CylinderZone(
        name="vessel", center_xy_um=(-40.0, -40.0), radius_um=8.0, z_min_um=-300.0, z_max_um=0.0
    )
    safety = SafetyConfig(**{**sim4.safety.model_dump(), "nogo_zones": (vessel,)})
    with pytest.raises(PlanError, match="no-go zone 'vessel'"):
        check_plan(plan, p1, transform, safety)
    elsewhere = CylinderZone(name="far", center_xy_um=(60.0, 60.0), radius_um=8.0)
    check_plan(
        plan,
        p1,
        transform,
        SafetyConfig(**{**sim4.safety.model_dump(), "nogo_zones": (elsewhere,)}),
    )


def test_move_to_stays_above_the_tissue(sim4: RigConfig, p1: PipetteGeometry) -> None:
    plan = plan_move_to(p1, (-20.0, -20.0, -60.0), (-200.0, -200.0, 300.0), sim4.safety)
    assert plan.waypoints[0].reason is R.RETRACT_AXIAL
    assert all(w.position_um[2] >= 0 for w in plan.waypoints)
    np.testing.assert_allclose(plan.end_um, (-200.0, -200.0, 300.0))
    with pytest.raises(PlanError, match="below the tissue surface"):
        plan_move_to(p1, (0.0, 0.0, 50.0), (0.0, 0.0, -10.0), sim4.safety)
