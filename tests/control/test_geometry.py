"""Frames and transforms: round trips, the simulator's mounting convention, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchpilot.clock import SimClock
from patchpilot.config import MicroscopeConfig, PipetteConfig, SimulatedDriverConfig, SoftLimits
from patchpilot.control.geometry import (
    FieldOfView,
    GeometryError,
    ManipulatorTransform,
    PipetteGeometry,
    as_point,
    rotation_matrix,
)
from patchpilot.hardware._kinematics import mounting_matrix
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.types import pipette_axis

angles = st.floats(-180.0, 180.0)


@given(angles, angles, angles)
def test_rotation_is_orthonormal(rx: float, ry: float, rz: float) -> None:
    matrix = rotation_matrix((rx, ry, rz))
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(matrix) == pytest.approx(1.0)


@settings(max_examples=50)
@given(
    st.tuples(angles, st.floats(-5, 5), st.floats(-5, 5)),
    st.tuples(*[st.floats(0.8, 1.2)] * 3),
    st.floats(-4.0, 4.0),
    st.tuples(*[st.floats(-1e4, 1e4)] * 3),
)
def test_round_trip_and_simulator_convention(
    rotation: tuple[float, float, float],
    scale: tuple[float, float, float],
    skew: float,
    point: tuple[float, float, float],
) -> None:
    transform = ManipulatorTransform.from_mounting(
        (rotation[1], rotation[2], rotation[0]), (1.0, 2.0, 3.0), (100.0, 200.0, 300.0), scale, skew
    )
    np.testing.assert_allclose(
        transform.matrix, mounting_matrix((rotation[1], rotation[2], rotation[0]), scale, skew)
    )
    device = transform.to_manipulator(point)
    np.testing.assert_allclose(transform.to_sample(device), point, atol=1e-6)
    step = np.array([3.0, -2.0, 1.0])
    np.testing.assert_allclose(
        transform.vector_to_sample(transform.vector_to_manipulator(step)), step, atol=1e-9
    )


def test_transform_predicts_the_simulated_tip() -> None:
    """With no backlash or drift, the mounting transform is exactly where the tip goes."""
    clock = SimClock()
    driver = SimulatedDriverConfig(
        origin_um=(10.0, -20.0, 50.0), rotation_deg=(1.0, -2.0, 40.0), axis_skew_deg=1.5
    )
    pipette = PipetteConfig(
        name="P1",
        driver=driver,
        pitch_deg=30,
        yaw_deg=40,
        soft_limits=SoftLimits(min_um=(0, 0, 0), max_um=(20000,) * 3),
    )
    manipulator = SimulatedManipulator.from_config(pipette, clock=clock, seed=1)
    transform = ManipulatorTransform.from_mounting(
        driver.rotation_deg, driver.origin_um, driver.initial_position_um, (1, 1, 1), 1.5
    )
    handle = manipulator.move_to((10030.0, 9980.0, 10010.0), 500.0)
    handle.wait(5.0)
    np.testing.assert_allclose(
        transform.to_sample((10030.0, 9980.0, 10010.0)), manipulator.true_tip_sample_um(), atol=1e-6
    )


def test_bad_transforms_and_points_are_refused() -> None:
    with pytest.raises(GeometryError, match="singular"):
        ManipulatorTransform(np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0.0]]), np.zeros(3))
    with pytest.raises(GeometryError, match="finite 3x3"):
        ManipulatorTransform(np.full((3, 3), math.nan), np.zeros(3))
    with pytest.raises(GeometryError, match="non-finite"):
        as_point((1.0, math.nan, 2.0))
    with pytest.raises(GeometryError, match="3 coordinates"):
        as_point((1.0, 2.0))
    identity = ManipulatorTransform.identity()
    with pytest.raises(GeometryError):
        identity.to_manipulator((math.inf, 0.0, 0.0))


def test_field_of_view() -> None:
    view = FieldOfView.from_microscope(MicroscopeConfig(stage_position_um=(100.0, 0.0)))
    assert view.contains((100.0, 0.0, -50.0))
    assert view.contains((225.0, 0.0), margin_um=0.0)
    assert not view.contains((225.0, 0.0), margin_um=10.0)
    np.testing.assert_allclose(view.clamp((400.0, -400.0, 7.0), 10.0), (218.0, -118.0, 7.0))


def test_pipette_axis_and_off_axis() -> None:
    pipette = PipetteConfig(
        name="P",
        driver=SimulatedDriverConfig(),
        pitch_deg=30,
        yaw_deg=90,
        soft_limits=SoftLimits(min_um=(0, 0, 0), max_um=(1, 1, 1)),
    )
    geometry = PipetteGeometry.from_config(pipette)
    np.testing.assert_allclose(geometry.axis, pipette_axis(30, 90))
    assert geometry.axis[2] < 0  # advancing goes down
    assert geometry.off_axis_um(5.0 * geometry.axis) == pytest.approx(0.0, abs=1e-12)
    assert geometry.off_axis_um((1.0, 0.0, 0.0)) == pytest.approx(1.0)
