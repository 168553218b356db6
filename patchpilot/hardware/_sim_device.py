"""The simulated manipulator's hardware: kinematics, mounting, imperfections and faults.

``SimulatedDevice`` plays the part of the controller box at the end of the cable. Its "wire"
methods (``read_position_um``, ``read_busy``, ``read_limit_switches``, ``send_move``,
``send_stop``) are all a driver may use; they raise ``DeviceLinkError`` while the link is down.
Its state is computed lazily from ``clock.now()``, so it runs in real time under ``RealClock``
and exactly as fast as the clock is advanced under ``SimClock``, deterministically for a seed.

Model (device axes, µm):

- Commands take effect ``latency_ms`` after they are sent.
- Moves follow a straight line with a trapezoidal speed profile (``max_acceleration_um_s2``);
  the last ``_CREEP_UM`` creep in exponentially during ``settle_s``; the device reports busy
  until then. A new move starts from where the previous one is (its speed is dropped).
- Stop brakes at the maximum acceleration.
- The encoder reads the commanded motion plus readout noise (plus any injected jump).
- The physical tip lags by backlash on each axis after a reversal (a dead band of
  ``backlash_um``), drifts slowly in the sample frame, and maps to the sample frame through the
  mounting (rotation, scale, skew). A 4th axis moves along the pipette axis (uMp-4 "D" axis;
  positive advances the tip).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from patchpilot.clock import Clock
from patchpilot.config import SimulatedDriverConfig
from patchpilot.hardware._kinematics import MotionSegment, mounting_matrix, plan_trapezoid
from patchpilot.types import pipette_axis

__all__ = ["DeviceLinkError", "SimFault", "SimulatedDevice"]

FloatArray = NDArray[np.float64]
_CREEP_UM = 0.3  # the final approach that creeps in during the settle time
_LINK_ERROR = "no answer from the simulated controller (link down)"


class SimFault(str, Enum):
    """Faults that can be injected into a simulated device."""

    LINK_LOST = "link_lost"
    """The device stops answering; it keeps executing what it was told."""
    AXIS_STALL = "axis_stall"
    """One axis stops moving; the device keeps reporting busy."""
    POSITION_JUMP = "position_jump"
    """The position reading jumps by ``offset_um`` (an encoder glitch); the tip does not."""
    BUSY_STUCK = "busy_stuck"
    """The busy flag stays set whatever the device does."""
    LIMIT_SWITCH = "limit_switch"
    """A hardware limit switch on ``axis`` halts every axis at once."""


class DeviceLinkError(Exception):
    """The simulated controller did not answer."""


@dataclass(frozen=True)
class _Fault:
    at_s: float
    kind: SimFault
    axis: int
    offset_um: tuple[float, ...]


class SimulatedDevice:
    """A simulated manipulator controller (see the module docstring for the model).

    Parameters
    ----------
    config
        Mounting, imperfections and timing.
    pitch_deg, yaw_deg
        The pipette axis (sample frame) that a 4th axis moves along.
    clock
        Time source; the device's state is a function of ``clock.now()``.
    seed
        Seed of the readout noise.
    serial
        The serial number the device reports.

    Raises
    ------
    ValueError
        ``initial_position_um`` does not have ``n_axes`` values.
    """

    def __init__(
        self,
        config: SimulatedDriverConfig,
        *,
        pitch_deg: float,
        yaw_deg: float,
        clock: Clock,
        seed: int | None = None,
        serial: str = "SIM-0",
    ) -> None:
        if len(config.initial_position_um) != config.n_axes:
            raise ValueError(
                f"initial_position_um has {len(config.initial_position_um)} values but the "
                f"simulated device has {config.n_axes} axes"
            )
        self.config = config
        self.serial = serial
        self.n_axes = config.n_axes
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._latency_s = config.latency_ms / 1000.0
        self._half_backlash_um = config.backlash_um / 2.0
        self._initial_um = np.asarray(config.initial_position_um, dtype=np.float64)
        self._origin_um = np.asarray(config.origin_um, dtype=np.float64)
        self._mounting = mounting_matrix(
            config.rotation_deg, config.axis_scale, config.axis_skew_deg
        )
        self._d_axis = pipette_axis(pitch_deg, yaw_deg)
        self._drift_um_s = np.asarray(config.drift_um_per_min, dtype=np.float64) / 60.0
        self._born_s = clock.now()
        rest = self._initial_um.copy()
        self._segments: list[MotionSegment] = [self._rest_segment(self._born_s, rest, rest)]
        self._faults: list[_Fault] = []
        self._read_offset_um = np.zeros(self.n_axes)
        self._link_down = False
        self._busy_stuck = False
        self._limit_bits = 0
        self.wire_log: list[tuple[float, str]] = []
        """(time, command) for every command that reached the device (tests inspect it)."""

    # -- wire ----------------------------------------------------------------------------
    def read_position_um(self) -> FloatArray:
        """Encoder position plus readout noise (µm)."""
        with self._lock:
            now = self._answer()
            noise = self._rng.normal(0.0, self.config.readout_noise_um, self.n_axes)
            position: FloatArray = self._segment_at(now).commanded_at(now)
            return position + self._read_offset_um + noise

    def read_busy(self) -> bool:
        with self._lock:
            now = self._answer()
            return self._busy_stuck or now < self._segment_at(now).end_s()

    def read_limit_switches(self) -> int:
        """Bit ``2*axis`` (low end) or ``2*axis+1`` (high end) set while a switch is hit."""
        with self._lock:
            self._answer()
            return self._limit_bits

    def read_info(self) -> dict[str, str]:
        """Model, serial number and firmware, as a controller would report them."""
        with self._lock:
            self._answer()
            return {
                "model": f"simulated uMp-{self.n_axes}",
                "serial": self.serial,
                "firmware": "sim 1.0",
            }

    def send_move(self, target_um: FloatArray, speed_um_s: float) -> None:
        """Start a straight move to ``target_um`` at ``speed_um_s`` (after the latency)."""
        target = np.asarray(target_um, dtype=np.float64)
        if target.shape != (self.n_axes,) or not np.all(np.isfinite(target)):
            raise ValueError(f"bad target {target_um!r} for a {self.n_axes}-axis device")
        if not (math.isfinite(speed_um_s) and speed_um_s > 0):
            raise ValueError(f"bad speed {speed_um_s!r}")
        with self._lock:
            now = self._answer()
            self.wire_log.append((now, f"move {target.tolist()} {speed_um_s:g}"))
            self._limit_bits = 0
            start_s = now + self._latency_s
            active = self._segment_at(start_s)
            start = active.commanded_at(start_s)
            physical = self._physical(active, start_s)
            offset = target - start
            distance = float(np.linalg.norm(offset))
            direction = offset / distance if distance > 0 else np.zeros(self.n_axes)
            creep = min(_CREEP_UM, distance / 2.0)
            profile = plan_trapezoid(
                distance - creep, speed_um_s, self.config.max_acceleration_um_s2
            )
            segment = MotionSegment(
                start_s, start, target, direction, profile, creep, self.config.settle_s, physical
            )
            self._segments = [s for s in self._segments if s.start_s < start_s] + [segment]

    def send_stop(self) -> None:
        """Brake every axis at the maximum acceleration (after the latency)."""
        with self._lock:
            now = self._answer()
            self.wire_log.append((now, "stop"))
            at_s = now + self._latency_s
            active = self._segment_at(at_s)
            if at_s < active.end_s() and active.brake_at_s is None:
                self._replace(active, replace(active, brake_at_s=at_s))

    # -- truth (never for drivers or controllers) ----------------------------------------
    def true_tip_sample_um(self) -> FloatArray:
        """The physical tip in the sample frame (µm), with backlash and drift."""
        with self._lock:
            now = self._clock.now()
            self._catch_up(now)
            return self._tip_at(now)

    def true_velocity_sample_um_s(self) -> FloatArray:
        """The physical tip's velocity in the sample frame (µm/s), for motion blur."""
        with self._lock:
            now = self._clock.now()
            self._catch_up(now)
            segment = self._segment_at(now)
            step_s = 1e-3
            earlier_s = max(segment.start_s, now - step_s)
            if now - earlier_s <= 0:
                return self._drift_um_s.copy()
            delta = self._tip_at(now, segment) - self._tip_at(earlier_s, segment)
            velocity: FloatArray = delta / (now - earlier_s)
            return velocity

    def true_position_um(self) -> FloatArray:
        """The encoder position without noise or glitches (device axes, µm)."""
        with self._lock:
            now = self._clock.now()
            self._catch_up(now)
            position: FloatArray = self._segment_at(now).commanded_at(now)
            return position

    # -- faults --------------------------------------------------------------------------
    def inject_fault(
        self,
        kind: SimFault | str,
        *,
        after_s: float = 0.0,
        axis: int = 0,
        offset_um: tuple[float, ...] | None = None,
    ) -> None:
        """Make ``kind`` happen ``after_s`` seconds of clock time from now.

        Parameters
        ----------
        kind
            Which fault.
        after_s
            Delay (clock seconds).
        axis
            The axis for ``AXIS_STALL`` and ``LIMIT_SWITCH``.
        offset_um
            The reading's jump for ``POSITION_JUMP`` (default 50 µm on ``axis``).

        Raises
        ------
        ValueError
            An unknown fault, a negative delay or an axis the device does not have.
        """
        fault_kind = SimFault(kind)
        if not (math.isfinite(after_s) and after_s >= 0):
            raise ValueError(f"after_s must be finite and non-negative, got {after_s}")
        if not 0 <= axis < self.n_axes:
            raise ValueError(f"axis {axis} does not exist on a {self.n_axes}-axis device")
        if offset_um is None:
            offset = [0.0] * self.n_axes
            offset[axis] = 50.0
            offset_um = tuple(offset)
        if len(offset_um) != self.n_axes:
            raise ValueError(f"offset_um needs {self.n_axes} values, got {offset_um}")
        with self._lock:
            at_s = self._clock.now() + after_s
            self._faults.append(_Fault(at_s, fault_kind, axis, tuple(offset_um)))
            self._faults.sort(key=lambda fault: fault.at_s)

    def clear_faults(self) -> None:
        """Restore the link, unstick busy, free stalled axes, re-zero glitches; drop pending."""
        with self._lock:
            now = self._clock.now()
            self._catch_up(now)
            self._faults.clear()
            self._link_down = False
            self._busy_stuck = False
            self._read_offset_um = np.zeros(self.n_axes)
            segment = self._segment_at(now)
            if segment.frozen_um:
                position = segment.commanded_at(now)
                self._replace(
                    segment, self._rest_segment(now, position, self._physical(segment, now))
                )

    @property
    def is_link_down(self) -> bool:
        with self._lock:
            self._catch_up(self._clock.now())
            return self._link_down

    # -- internals -----------------------------------------------------------------------
    def _answer(self) -> float:
        now = self._clock.now()
        self._catch_up(now)
        if self._link_down:
            raise DeviceLinkError(_LINK_ERROR)
        return now

    def _rest_segment(
        self, t_s: float, position: FloatArray, physical: FloatArray
    ) -> MotionSegment:
        return MotionSegment(
            t_s,
            position.copy(),
            position.copy(),
            np.zeros(self.n_axes),
            plan_trapezoid(0.0, 1.0, 1.0),
            0.0,
            0.0,
            physical.copy(),
        )

    def _segment_at(self, t_s: float) -> MotionSegment:
        current = self._segments[0]
        for segment in self._segments:
            if segment.start_s <= t_s:
                current = segment
        return current

    def _replace(self, old: MotionSegment, new: MotionSegment) -> None:
        self._segments = [new if s is old else s for s in self._segments]

    def _catch_up(self, now: float) -> None:
        """Apply faults that fell due and forget segments that are over."""
        while self._faults and self._faults[0].at_s <= now:
            fault = self._faults.pop(0)
            self._apply(fault)
        live = [s for s in self._segments if s.start_s > now]
        self._segments = [self._segment_at(now), *live]

    def _apply(self, fault: _Fault) -> None:
        at_s = fault.at_s
        segment = self._segment_at(at_s)
        if fault.kind is SimFault.LINK_LOST:
            self._link_down = True
        elif fault.kind is SimFault.BUSY_STUCK:
            self._busy_stuck = True
        elif fault.kind is SimFault.POSITION_JUMP:
            self._read_offset_um = self._read_offset_um + np.asarray(fault.offset_um)
        elif fault.kind is SimFault.AXIS_STALL:
            if at_s < segment.end_s() and segment.direction[fault.axis] != 0.0:
                frozen = dict(segment.frozen_um)
                frozen[fault.axis] = float(segment.commanded_at(at_s)[fault.axis])
                self._replace(segment, replace(segment, frozen_um=frozen))
        elif fault.kind is SimFault.LIMIT_SWITCH:
            heading = segment.direction[fault.axis]
            self._limit_bits |= 1 << (2 * fault.axis + (1 if heading >= 0 else 0))
            if at_s < segment.end_s():
                self._replace(segment, replace(segment, halted_at_s=at_s))

    def _physical(self, segment: MotionSegment, t_s: float) -> FloatArray:
        commanded = segment.commanded_at(t_s)
        physical: FloatArray = np.clip(
            segment.physical_start_um,
            commanded - self._half_backlash_um,
            commanded + self._half_backlash_um,
        )
        return physical

    def _tip_at(self, t_s: float, segment: MotionSegment | None = None) -> FloatArray:
        physical = self._physical(segment or self._segment_at(t_s), t_s)
        moved = physical - self._initial_um
        tip: FloatArray = self._origin_um + self._mounting @ moved[:3]
        if self.n_axes == 4:
            tip = tip + moved[3] * self._d_axis
        return tip + self._drift_um_s * (t_s - self._born_s)
