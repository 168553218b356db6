"""Coordinate frames: manipulator axes, the sample frame, and each pipette's axis.

- Manipulator frame: a device's own x, y, z axes in µm. They may be rotated, scaled and
  non-orthogonal with respect to the microscope; only the first three axes are used for
  closed-loop control (a uMp-4's diagonal axis is left where it is).
- Sample frame: x, y along the image's columns and rows (µm, independent of where the stage
  is), z along the optical axis, positive up, zero at the focus reference (see
  ``patchpilot.types``).
- Pipette axis: the unit vector of the tip's advance in the sample frame, from pitch and yaw
  (``patchpilot.types.pipette_axis``).

A ``ManipulatorTransform`` maps manipulator µm to sample µm (``sample = M @ m + offset``); its
inverse turns a wanted tip position into the command sent to the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from patchpilot.config import MicroscopeConfig, PipetteConfig, SimulatedDriverConfig, SoftLimits
from patchpilot.types import pipette_axis

__all__ = [
    "FieldOfView",
    "GeometryError",
    "ManipulatorTransform",
    "PipetteGeometry",
    "as_point",
    "rotation_matrix",
]

Vector = NDArray[np.float64]

# A transform whose matrix is this ill-conditioned cannot be trusted to command moves.
_MAX_CONDITION = 1e4


class GeometryError(ValueError):
    """A transform or point that cannot be used (singular, non-finite, wrong shape)."""


def as_point(value: ArrayLike, what: str = "point") -> Vector:
    """A finite 3-vector of float64.

    Raises
    ------
    GeometryError
        When ``value`` does not have three finite numbers.
    """
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.shape != (3,):
        raise GeometryError(f"{what} must have 3 coordinates, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise GeometryError(f"{what} {array.tolist()} has a non-finite coordinate")
    return array


def rotation_matrix(rotation_deg: Sequence[float]) -> Vector:
    """Rotation about sample x, then y, then z (degrees), as a 3x3 matrix (``Rz @ Ry @ Rx``)."""
    rx, ry, rz = (math.radians(float(a)) for a in rotation_deg)
    cx, sx, cy, sy, cz, sz = (
        math.cos(rx),
        math.sin(rx),
        math.cos(ry),
        math.sin(ry),
        math.cos(rz),
        math.sin(rz),
    )
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    rot_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rot_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    matrix: Vector = rot_z @ rot_y @ rot_x
    return matrix


@dataclass(frozen=True)
class ManipulatorTransform:
    """Affine map from manipulator axes (µm) to the sample frame (µm).

    ``sample_um = matrix @ manipulator_um + offset_um``. Columns of ``matrix`` are where a
    1 µm step of each device axis takes the tip in the sample frame.

    Raises
    ------
    GeometryError
        On construction, when the matrix is not 3x3, not finite, or too ill-conditioned to
        invert (condition number above 1e4).
    """

    matrix: Vector
    offset_um: Vector

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.float64)
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
            raise GeometryError(f"transform matrix must be a finite 3x3, got {matrix!r}")
        condition = float(np.linalg.cond(matrix))
        if not math.isfinite(condition) or condition > _MAX_CONDITION:
            raise GeometryError(
                f"transform matrix is singular or ill-conditioned (condition {condition:.3g})"
            )
        matrix.setflags(write=False)
        offset = as_point(self.offset_um, "transform offset").copy()
        offset.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "offset_um", offset)

    @classmethod
    def identity(cls) -> ManipulatorTransform:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_mounting(
        cls,
        rotation_deg: Sequence[float],
        origin_um: Sequence[float],
        reference_um: Sequence[float],
        axis_scale: Sequence[float] = (1.0, 1.0, 1.0),
        axis_skew_deg: float = 0.0,
    ) -> ManipulatorTransform:
        """The transform of a device mounted with a rotation, scale and x/y skew.

        Parameters
        ----------
        rotation_deg
            Mounting rotation about sample x, y, z (degrees, applied in that order).
        origin_um
            Sample position of the tip when the device reads ``reference_um``.
        reference_um
            Device reading (µm, first three axes) at ``origin_um``.
        axis_scale
            Per-axis scale (sample µm per device µm).
        axis_skew_deg
            Angle by which the device's y axis leans toward its x axis (degrees).
        """
        skew = math.radians(axis_skew_deg)
        columns = np.array(
            [[1.0, math.sin(skew), 0.0], [0.0, math.cos(skew), 0.0], [0.0, 0.0, 1.0]]
        )
        matrix = rotation_matrix(rotation_deg) @ columns @ np.diag(np.asarray(axis_scale, float))
        reference = as_point(reference_um, "reference position")
        return cls(matrix, as_point(origin_um, "origin") - matrix @ reference)

    @classmethod
    def of_simulated(cls, pipette: PipetteConfig) -> ManipulatorTransform:
        """The true mounting of a simulated pipette (what calibration has to discover; for
        scoring and tests only, never for control)."""
        driver = pipette.driver
        if not isinstance(driver, SimulatedDriverConfig):
            raise ValueError(f"pipette {pipette.name!r} is not simulated")
        return cls.from_mounting(
            driver.rotation_deg,
            driver.origin_um,
            driver.initial_position_um[:3],
            driver.axis_scale,
            driver.axis_skew_deg,
        )

    def to_sample(self, manipulator_um: ArrayLike) -> Vector:
        """Sample position (µm) of a device reading (first three axes used)."""
        position = np.asarray(manipulator_um, dtype=np.float64).reshape(-1)[:3]
        return self.matrix @ as_point(position, "manipulator position") + self.offset_um

    def to_manipulator(self, sample_um: ArrayLike) -> Vector:
        """Device reading (µm, three axes) that puts the tip at ``sample_um``."""
        point = as_point(sample_um, "sample position")
        return np.asarray(np.linalg.solve(self.matrix, point - self.offset_um), dtype=np.float64)

    def vector_to_sample(self, manipulator_step_um: ArrayLike) -> Vector:
        """Sample displacement (µm) of a device step (no offset)."""
        return self.matrix @ as_point(manipulator_step_um, "manipulator step")

    def vector_to_manipulator(self, sample_step_um: ArrayLike) -> Vector:
        """Device step (µm) that displaces the tip by ``sample_step_um``."""
        step = as_point(sample_step_um, "sample step")
        return np.asarray(np.linalg.solve(self.matrix, step), dtype=np.float64)

    def shifted(self, sample_offset_um: ArrayLike) -> ManipulatorTransform:
        """The same transform with the tip ``sample_offset_um`` further along (drift update)."""
        return ManipulatorTransform(
            self.matrix, self.offset_um + as_point(sample_offset_um, "offset shift")
        )

    def rotation_error_deg(self, other: ManipulatorTransform) -> float:
        """Largest angle (degrees) between corresponding axis directions of two transforms."""
        angles = []
        for column in range(3):
            a = self.matrix[:, column] / np.linalg.norm(self.matrix[:, column])
            b = other.matrix[:, column] / np.linalg.norm(other.matrix[:, column])
            angles.append(math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0)))))
        return max(angles)


@dataclass(frozen=True)
class PipetteGeometry:
    """What the planner needs to know about one pipette (sample frame unless said).

    Parameters
    ----------
    name
        The pipette's name.
    axis
        Unit vector of the tip's advance (pointing down into the tissue).
    tip_diameter_um, taper_half_angle_deg
        The body is modelled as a cone from the tip back along ``-axis``.
    limits
        Soft limits in device axes (µm).
    fast_speed_um_s, slow_speed_um_s
        Speeds above and inside the tissue.
    standoff_um
        How far short of the target (along the axis) the approach stops.
    """

    name: str
    axis: Vector
    tip_diameter_um: float
    taper_half_angle_deg: float
    limits: SoftLimits
    fast_speed_um_s: float
    slow_speed_um_s: float
    standoff_um: float

    @classmethod
    def from_config(cls, pipette: PipetteConfig) -> PipetteGeometry:
        return cls(
            name=pipette.name,
            axis=pipette_axis(pipette.pitch_deg, pipette.yaw_deg),
            tip_diameter_um=pipette.tip_diameter_um,
            taper_half_angle_deg=pipette.taper_half_angle_deg,
            limits=pipette.soft_limits,
            fast_speed_um_s=pipette.fast_speed_um_s,
            slow_speed_um_s=pipette.slow_speed_um_s,
            standoff_um=pipette.target_standoff_um,
        )

    @property
    def tip_radius_um(self) -> float:
        return self.tip_diameter_um / 2.0

    @property
    def taper_slope(self) -> float:
        """Radius gained per µm back from the tip."""
        return math.tan(math.radians(self.taper_half_angle_deg))

    def within_limits(self, manipulator_um: ArrayLike) -> bool:
        return self.limits.contains([float(v) for v in np.asarray(manipulator_um).reshape(-1)])

    def off_axis_um(self, step_um: ArrayLike) -> float:
        """Length (µm) of the part of a sample displacement perpendicular to the axis."""
        step = np.asarray(step_um, dtype=np.float64)
        return float(np.linalg.norm(step - (step @ self.axis) * self.axis))


@dataclass(frozen=True)
class FieldOfView:
    """The part of the sample frame the camera sees (x, y in µm)."""

    center_um: tuple[float, float]
    width_um: float
    height_um: float

    @classmethod
    def from_microscope(cls, microscope: MicroscopeConfig) -> FieldOfView:
        return cls(
            microscope.stage_position_um,
            microscope.frame_width_px * microscope.pixel_size_um,
            microscope.frame_height_px * microscope.pixel_size_um,
        )

    def contains(self, point_um: ArrayLike, margin_um: float = 0.0) -> bool:
        """Whether ``point_um``'s x, y lies at least ``margin_um`` inside the field."""
        x, y = (float(v) for v in np.asarray(point_um, dtype=np.float64).reshape(-1)[:2])
        return (
            abs(x - self.center_um[0]) <= self.width_um / 2.0 - margin_um
            and abs(y - self.center_um[1]) <= self.height_um / 2.0 - margin_um
        )

    def clamp(self, point_um: ArrayLike, margin_um: float = 0.0) -> Vector:
        """``point_um`` with x, y moved (if needed) to ``margin_um`` inside the field."""
        point = np.array(point_um, dtype=np.float64).reshape(-1)
        half_x = max(self.width_um / 2.0 - margin_um, 0.0)
        half_y = max(self.height_um / 2.0 - margin_um, 0.0)
        point[0] = np.clip(point[0], self.center_um[0] - half_x, self.center_um[0] + half_x)
        point[1] = np.clip(point[1], self.center_um[1] - half_y, self.center_um[1] + half_y)
        return point
