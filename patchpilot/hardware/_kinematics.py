"""Motion maths shared by the simulated hardware: speed profiles and axis mountings.

Pure functions of numbers; no clocks, no devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["MotionSegment", "TrapezoidProfile", "mounting_matrix", "plan_trapezoid"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrapezoidProfile:
    """Distance along a straight path versus time: accelerate, cruise, decelerate.

    Starts and ends at rest. When the path is too short to reach ``speed_um_s`` the profile is
    triangular and ``peak_speed_um_s`` is lower than the requested speed.
    """

    distance_um: float
    accel_um_s2: float
    peak_speed_um_s: float
    accel_s: float
    cruise_s: float

    @property
    def duration_s(self) -> float:
        return 2.0 * self.accel_s + self.cruise_s

    def distance_at(self, t_s: float) -> float:
        """Distance travelled (µm) ``t_s`` seconds after the start (clamped to the ends)."""
        if t_s <= 0.0:
            return 0.0
        if t_s >= self.duration_s:
            return self.distance_um
        a, v, ta = self.accel_um_s2, self.peak_speed_um_s, self.accel_s
        if t_s < ta:
            return 0.5 * a * t_s * t_s
        ramp_um = 0.5 * a * ta * ta
        if t_s < ta + self.cruise_s:
            return ramp_um + v * (t_s - ta)
        remaining_s = self.duration_s - t_s
        return self.distance_um - 0.5 * a * remaining_s * remaining_s

    def speed_at(self, t_s: float) -> float:
        """Speed (µm/s) ``t_s`` seconds after the start."""
        if t_s <= 0.0 or t_s >= self.duration_s:
            return 0.0
        if t_s < self.accel_s:
            return self.accel_um_s2 * t_s
        if t_s < self.accel_s + self.cruise_s:
            return self.peak_speed_um_s
        return self.accel_um_s2 * (self.duration_s - t_s)


def plan_trapezoid(distance_um: float, speed_um_s: float, accel_um_s2: float) -> TrapezoidProfile:
    """The fastest rest-to-rest profile over ``distance_um`` within a speed and acceleration.

    Raises
    ------
    ValueError
        A negative or non-finite distance, or a speed or acceleration that is not positive.
    """
    if not (math.isfinite(distance_um) and distance_um >= 0.0):
        raise ValueError(f"distance must be finite and non-negative, got {distance_um}")
    if not (speed_um_s > 0.0 and accel_um_s2 > 0.0):
        raise ValueError(f"speed {speed_um_s} and acceleration {accel_um_s2} must be positive")
    if distance_um == 0.0:
        return TrapezoidProfile(0.0, accel_um_s2, 0.0, 0.0, 0.0)
    ramp_um = speed_um_s * speed_um_s / accel_um_s2  # accelerate + decelerate
    if distance_um >= ramp_um:
        accel_s = speed_um_s / accel_um_s2
        cruise_s = (distance_um - ramp_um) / speed_um_s
        return TrapezoidProfile(distance_um, accel_um_s2, speed_um_s, accel_s, cruise_s)
    accel_s = math.sqrt(distance_um / accel_um_s2)
    return TrapezoidProfile(distance_um, accel_um_s2, accel_um_s2 * accel_s, accel_s, 0.0)


def mounting_matrix(
    rotation_deg: tuple[float, float, float],
    axis_scale: tuple[float, float, float],
    axis_skew_deg: float,
) -> FloatArray:
    """Matrix mapping device-axis displacements (µm) to sample-frame displacements (µm).

    Column ``i`` is where one µm on device axis ``i`` goes. The device's y axis leans
    ``axis_skew_deg`` toward its x axis, each axis is scaled, then the whole is rotated about
    sample x, then y, then z (``R = Rz @ Ry @ Rx``).
    """
    rx, ry, rz = (math.radians(v) for v in rotation_deg)
    cx, sx = math.cos(rx), math.sin(rx)
    cy, sy = math.cos(ry), math.sin(ry)
    cz, sz = math.cos(rz), math.sin(rz)
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    rot_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rot_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    skew = math.radians(axis_skew_deg)
    shear = np.array([[1.0, math.sin(skew), 0.0], [0.0, math.cos(skew), 0.0], [0.0, 0.0, 1.0]])
    scale = np.diag(np.asarray(axis_scale, dtype=np.float64))
    matrix: FloatArray = rot_z @ rot_y @ rot_x @ shear @ scale
    return matrix


@dataclass(frozen=True)
class MotionSegment:
    """One commanded straight motion from rest at ``start_um`` toward ``target_um`` (µm).

    ``profile`` covers all but the last ``creep_um``, which creeps in exponentially during
    ``settle_s``. Optional modifiers: braking at full deceleration from ``brake_at_s``, an
    instant halt at ``halted_at_s``, axes frozen at fixed values (stalled).
    """

    start_s: float
    start_um: FloatArray
    target_um: FloatArray
    direction: FloatArray
    profile: TrapezoidProfile
    creep_um: float
    settle_s: float
    physical_start_um: FloatArray
    brake_at_s: float | None = None
    halted_at_s: float | None = None
    frozen_um: dict[int, float] = field(default_factory=dict)

    @property
    def _ramp_end_s(self) -> float:
        return self.start_s + self.profile.duration_s

    def end_s(self) -> float:
        """When the device stops reporting busy (inf while an axis is stalled)."""
        if self.halted_at_s is not None:
            return self.halted_at_s
        if self.brake_at_s is not None:
            if self.brake_at_s >= self._ramp_end_s:
                return self.brake_at_s
            speed = self.profile.speed_at(self.brake_at_s - self.start_s)
            return self.brake_at_s + speed / self.profile.accel_um_s2
        if self.frozen_um:
            return math.inf
        return self._ramp_end_s + self.settle_s

    def _path_um(self, t_s: float) -> float:
        tau = t_s - self.start_s
        if self.brake_at_s is not None and t_s > self.brake_at_s:
            brake_tau = self.brake_at_s - self.start_s
            if self.brake_at_s >= self._ramp_end_s:
                return self._path_um(self.brake_at_s)
            speed = self.profile.speed_at(brake_tau)
            dt = min(t_s - self.brake_at_s, speed / self.profile.accel_um_s2)
            return (
                self.profile.distance_at(brake_tau)
                + speed * dt
                - 0.5 * self.profile.accel_um_s2 * dt * dt
            )
        if tau <= self.profile.duration_s:
            return self.profile.distance_at(tau)
        creep_s = tau - self.profile.duration_s
        if creep_s >= self.settle_s or self.settle_s == 0.0:
            return self.profile.distance_um + self.creep_um
        fraction = 1.0 - math.exp(-4.0 * creep_s / self.settle_s)
        return self.profile.distance_um + self.creep_um * fraction

    def commanded_at(self, t_s: float) -> FloatArray:
        """Encoder position (µm) at ``t_s`` (no noise)."""
        if self.halted_at_s is not None:
            t_s = min(t_s, self.halted_at_s)
        settled = self.halted_at_s is None and self.brake_at_s is None and not self.frozen_um
        if settled and t_s >= self.end_s():
            return self.target_um.copy()
        position = self.start_um + self.direction * self._path_um(t_s)
        for axis, value in self.frozen_um.items():
            position[axis] = value
        return position
