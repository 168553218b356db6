"""The simulated manipulator: the dry-run's hardware, behind the ``Manipulator`` interface.

``SimulatedManipulator`` is a driver like the real ones: it talks to a ``SimulatedDevice``
(the simulated controller, ``_sim_device.py``) only through its wire methods, and watches each
move by polling it on the clock (``clock.call_later``), so under ``SimClock`` waiting on a
``MoveHandle`` advances simulated time and resolves the move deterministically.

Every fault ends the move in a defined state with a FAULT record:

==============  ==========================================================================
link lost       no answer for ``link_timeout_s`` -> FAILED "link lost ..."
axis stall      an axis makes no progress while it should -> FAILED "axis k stalled ...",
                stop sent
position jump   the reading moves faster than the move could -> FAILED "position reading
                jumped ...", stop sent
busy stuck      still busy after the deadline although at the target -> FAILED "busy flag
                stuck ...", stop sent
limit switch    device stopped with a limit bit set -> FAILED "limit switch hit ..."
==============  ==========================================================================

.. warning::
   ``true_tip_sample_um`` and ``true_velocity_sample_um_s`` give the PHYSICAL tip (with
   backlash, drift and the mounting the controller is supposed to discover). They exist for the
   simulated camera and for scoring only. THE CONTROLLER MUST NEVER READ THEM: a controller
   that does is cheating and will fail on a real rig.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from patchpilot.clock import Clock
from patchpilot.config import PipetteConfig, SimulatedDriverConfig, SoftLimits
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware._kinematics import plan_trapezoid
from patchpilot.hardware._protocol import (
    CommunicationError,
    DeviceInfo,
    Manipulator,
    MoveHandle,
    MoveStatus,
)
from patchpilot.hardware._sim_device import DeviceLinkError, SimFault, SimulatedDevice

__all__ = ["SimFault", "SimulatedDevice", "SimulatedManipulator"]

FloatArray = NDArray[np.float64]
_RECHECKS = 3  # re-reads after "not busy" before calling a miss a failure
_RECHECK_S = 0.1
_STALL_WINDOW_MIN_S = 0.3
_STALL_WINDOW_MAX_S = 5.0


@dataclass
class _Watch:
    """What the monitor knows about one move in progress."""

    handle: MoveHandle
    target: FloatArray
    direction: FloatArray
    start_s: float
    deadline_s: float
    history: deque[tuple[float, FloatArray]] = field(default_factory=deque)
    first_error_s: float | None = None
    rechecks: int = 0


class SimulatedManipulator(Manipulator):
    """A driver for one ``SimulatedDevice``.

    Parameters
    ----------
    name, limits, max_speed_um_s, log, clock
        As for ``Manipulator``.
    device
        The simulated controller (built with the same clock).
    poll_s
        How often a move in progress is checked (clock seconds).
    link_timeout_s
        How long the device may stay silent during a move before it is FAILED.
    deadline_margin_s
        Extra time beyond 1.5 x the estimated duration before a move is FAILED.
    jump_tolerance_um
        How far a reading may move beyond what the speed allows between two polls.
    """

    def __init__(
        self,
        name: str,
        device: SimulatedDevice,
        limits: SoftLimits,
        max_speed_um_s: float,
        log: EventLog | None = None,
        clock: Clock | None = None,
        *,
        poll_s: float = 0.01,
        link_timeout_s: float = 0.25,
        deadline_margin_s: float = 0.5,
        jump_tolerance_um: float = 5.0,
    ) -> None:
        super().__init__(name, limits, max_speed_um_s, log, clock)
        self._device = device
        self.poll_s = poll_s
        self.link_timeout_s = link_timeout_s
        self.deadline_margin_s = deadline_margin_s
        self.jump_tolerance_um = jump_tolerance_um
        noise = device.config.readout_noise_um
        self.position_tolerance_um = max(0.5, 0.2 + 5.0 * noise)
        """A move has FINISHED when every axis reads within this of the target (µm)."""
        self._progress_um = max(0.05, 6.0 * noise)
        self._last_idle_reading: FloatArray | None = None

    @classmethod
    def from_config(
        cls,
        pipette: PipetteConfig,
        *,
        log: EventLog | None = None,
        clock: Clock,
        seed: int | None = None,
    ) -> SimulatedManipulator:
        """Build the device and its driver for one pipette with a simulated driver config.

        Raises
        ------
        TypeError
            The pipette's driver is not ``simulated``.
        ValueError
            ``initial_position_um`` does not match ``n_axes``.
        """
        driver = pipette.driver
        if not isinstance(driver, SimulatedDriverConfig):
            raise TypeError(f"{pipette.name}: driver kind {driver.kind!r} is not 'simulated'")
        device = SimulatedDevice(
            driver,
            pitch_deg=pipette.pitch_deg,
            yaw_deg=pipette.yaw_deg,
            clock=clock,
            seed=seed,
            serial=f"SIM-{pipette.name}",
        )
        return cls(pipette.name, device, pipette.soft_limits, pipette.max_speed_um_s, log, clock)

    # -- simulation access ---------------------------------------------------------------
    @property
    def device(self) -> SimulatedDevice:
        """The simulated controller (fault injection, tests)."""
        return self._device

    def true_tip_sample_um(self) -> FloatArray:
        """PHYSICAL tip position in the sample frame (µm) -- camera and scoring ONLY.

        The controller must never call this (see the module docstring).
        """
        return self._device.true_tip_sample_um()

    def true_velocity_sample_um_s(self) -> FloatArray:
        """PHYSICAL tip velocity in the sample frame (µm/s) -- camera motion blur ONLY."""
        return self._device.true_velocity_sample_um_s()

    def inject_fault(
        self,
        kind: SimFault | str,
        *,
        after_s: float = 0.0,
        axis: int = 0,
        offset_um: tuple[float, ...] | None = None,
    ) -> None:
        """Schedule a fault on the simulated device (see ``SimulatedDevice.inject_fault``)."""
        self._device.inject_fault(kind, after_s=after_s, axis=axis, offset_um=offset_um)
        self.log.record(
            EventKind.INFO,
            self.name,
            "simulated fault scheduled",
            fault=SimFault(kind).value,
            after_s=after_s,
            axis=axis,
        )

    # -- backend -------------------------------------------------------------------------
    @property
    def n_axes(self) -> int:
        return self._device.n_axes

    def _identify(self) -> DeviceInfo:
        try:
            info = self._device.read_info()
        except DeviceLinkError as exc:
            raise CommunicationError(f"{self.name}: {exc}") from None
        return DeviceInfo(info["model"], info["serial"], info["firmware"], self.n_axes)

    def _read_position_um(self) -> tuple[float, ...]:
        try:
            reading = self._device.read_position_um()
            moving = self._device.read_busy()
        except DeviceLinkError as exc:
            raise CommunicationError(f"{self.name}: {exc}") from None
        move = self._current_move
        idle = not moving and (move is None or move.is_done)
        last = self._last_idle_reading
        if idle and last is not None:
            jump_um = float(np.max(np.abs(reading - last)))
            if jump_um > self.jump_tolerance_um:
                self.log.record(
                    EventKind.FAULT,
                    self.name,
                    "position changed while idle",
                    jump_um=jump_um,
                    before_um=last,
                    after_um=reading,
                )
        self._last_idle_reading = reading if idle else None
        return tuple(float(v) for v in reading)

    def _is_busy(self) -> bool:
        try:
            return self._device.read_busy()
        except DeviceLinkError as exc:
            raise CommunicationError(f"{self.name}: {exc}") from None

    def _send_stop(self) -> None:
        try:
            self._device.send_stop()
        except DeviceLinkError as exc:
            raise CommunicationError(f"{self.name}: {exc}") from None

    def _start_move(self, handle: MoveHandle) -> None:
        target = np.asarray(handle.target_um, dtype=np.float64)
        try:
            start = self._device.read_position_um()
            self._device.send_move(target, handle.speed_um_s)
        except DeviceLinkError as exc:
            raise CommunicationError(f"{self.name}: {exc}") from None
        self._last_idle_reading = None
        offset = target - start
        distance = float(np.linalg.norm(offset))
        config = self._device.config
        estimate_s = (
            plan_trapezoid(distance, handle.speed_um_s, config.max_acceleration_um_s2).duration_s
            + config.settle_s
            + config.latency_ms / 1000.0
        )
        handle.estimated_duration_s = estimate_s
        now = self.clock.now()
        watch = _Watch(
            handle,
            target,
            offset / distance if distance > 0 else np.zeros(self.n_axes),
            now,
            now + 1.5 * estimate_s + self.deadline_margin_s,
        )
        self.clock.call_later(self.poll_s, lambda: self._poll(watch))

    # -- the move monitor ----------------------------------------------------------------
    def _poll(self, watch: _Watch) -> None:
        handle = watch.handle
        if handle.is_done:
            return
        now = self.clock.now()
        try:
            reading = self._device.read_position_um()
            busy = self._device.read_busy()
            limit_bits = 0 if busy else self._device.read_limit_switches()
        except DeviceLinkError as exc:
            if watch.first_error_s is None:
                watch.first_error_s = now
            silent_s = now - watch.first_error_s
            if silent_s >= self.link_timeout_s:
                self._fail(watch, f"link lost: no answer for {silent_s:.2f} s ({exc})", False)
            else:
                self.clock.call_later(self.poll_s, lambda: self._poll(watch))
            return
        watch.first_error_s = None
        if self._jumped(watch, now, reading):
            return
        error = np.abs(reading - watch.target)
        worst_axis = int(np.argmax(error))
        at_target = float(error[worst_axis]) <= self.position_tolerance_um
        if not busy:
            if limit_bits:
                self._fail(watch, _limit_reason(limit_bits, reading, error), False)
            elif at_target:
                self._finish_move(handle, MoveStatus.FINISHED)
            elif watch.rechecks < _RECHECKS:
                watch.rechecks += 1  # devices report "done" slightly before they are
                self.clock.call_later(_RECHECK_S, lambda: self._poll(watch))
            else:
                self._fail(
                    watch,
                    f"stopped {error[worst_axis]:.2f} µm from the target on axis {worst_axis} "
                    f"(read {reading[worst_axis]:.2f} µm) after {_RECHECKS} re-checks",
                    False,
                )
            return
        watch.rechecks = 0
        stalled = self._stalled_axis(watch, now, error)
        if stalled is not None:
            self._fail(
                watch,
                f"axis {stalled} stalled at {reading[stalled]:.2f} µm "
                f"(target {watch.target[stalled]:.2f} µm) while the device reports busy",
                True,
            )
        elif now > watch.deadline_s:
            overdue_s = now - watch.deadline_s
            if at_target:
                reason = (
                    f"busy flag stuck: at the target but still reporting busy "
                    f"{overdue_s:.2f} s past the deadline"
                )
            else:
                reason = (
                    f"did not finish within {watch.deadline_s - watch.start_s:.2f} s "
                    f"(estimated {handle.estimated_duration_s or 0.0:.2f} s); still "
                    f"{error[worst_axis]:.2f} µm from the target on axis {worst_axis}"
                )
            self._fail(watch, reason, True)
        else:
            self.clock.call_later(self.poll_s, lambda: self._poll(watch))

    def _jumped(self, watch: _Watch, now: float, reading: FloatArray) -> bool:
        if watch.history:
            last_s, last = watch.history[-1]
            step_um = float(np.linalg.norm(reading - last))
            allowed_um = 1.5 * watch.handle.speed_um_s * (now - last_s) + self.jump_tolerance_um
            if step_um > allowed_um:
                self._fail(
                    watch,
                    f"position reading jumped by {step_um:.1f} µm in "
                    f"{(now - last_s) * 1000:.0f} ms (at most {allowed_um:.1f} µm possible)",
                    True,
                )
                return True
        watch.history.append((now, reading))
        while watch.history and now - watch.history[0][0] > _STALL_WINDOW_MAX_S:
            watch.history.popleft()
        return False

    def _stalled_axis(self, watch: _Watch, now: float, error: FloatArray) -> int | None:
        """An axis that should be moving but has not progressed over its window."""
        latency_s = self._device.config.latency_ms / 1000.0
        speed = watch.handle.speed_um_s
        for axis in range(self.n_axes):
            axis_speed = abs(float(watch.direction[axis])) * speed
            if error[axis] <= self.position_tolerance_um or axis_speed <= 0.0:
                continue
            window_s = max(_STALL_WINDOW_MIN_S, 3.0 * self._progress_um / axis_speed)
            if window_s > _STALL_WINDOW_MAX_S or now - watch.start_s < latency_s + window_s:
                continue
            old = [value for t_s, value in watch.history if now - t_s >= window_s]
            if not old:
                continue
            progress = abs(float(watch.history[-1][1][axis] - old[-1][axis]))
            if progress < self._progress_um:
                return axis
        return None

    def _fail(self, watch: _Watch, reason: str, send_stop: bool) -> None:
        if send_stop:
            self.log.record(EventKind.COMMAND, self.name, "stop", cause="move fault")
            try:
                self._device.send_stop()
            except DeviceLinkError as exc:
                reason += f"; stop could not be sent ({exc})"
        self._finish_move(watch.handle, MoveStatus.FAILED, reason)


def _limit_reason(bits: int, reading: FloatArray, error: FloatArray) -> str:
    switches = [
        f"axis {bit // 2} {'high' if bit % 2 else 'low'} end"
        for bit in range(2 * len(reading))
        if bits & (1 << bit)
    ]
    worst = int(np.argmax(error))
    return (
        f"limit switch hit ({', '.join(switches)}); stopped at "
        f"{[round(float(v), 2) for v in reading]} µm, {error[worst]:.2f} µm short on axis {worst}"
    )
