"""Scientifica manipulators behind the ``Manipulator`` interface.

Motion policy on top of ``_wire.py``, following what works on real rigs (acq4):

- Each move sets ``TOP`` for its speed, sends ``ABS`` and restores the default ``TOP`` (the
  joystick keeps its speed).
- A move is watched from a thread: ``S`` is polled; once it reads 0 the position is
  re-checked ``0.1 s`` later up to 3 times (controllers report "stopped" slightly early); a
  miss beyond 0.5 µm resends ``ABS`` (3 attempts in all), then FAILS with the distance.
- Below ``min_speed_um_s`` the controller cannot move smoothly: the move goes stepwise, each
  step at the minimum speed toward where the slow move should be by then.
- A poll timeout or garbled reply is tolerated (acq4 #370); only ``link_timeout_s`` without a
  valid reply fails the move ("link lost"). A disconnect fails it at once. Every move has a
  deadline (1.5 x estimate + margin).
- After ``stop`` (or a newer move) the watcher can never send another ``ABS`` for the old move.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from patchpilot.config import PipetteConfig, ScientificaDriverConfig, SoftLimits
from patchpilot.events import EventKind
from patchpilot.hardware._kinematics import plan_trapezoid
from patchpilot.hardware._protocol import (
    CommunicationError,
    DeviceInfo,
    Manipulator,
    MoveHandle,
    MoveStatus,
)
from patchpilot.hardware.scientifica._wire import (
    ScientificaDisconnected,
    ScientificaWire,
    SerialTransport,
    Transport,
    connect,
)

if TYPE_CHECKING:
    from patchpilot.clock import Clock
    from patchpilot.events import EventLog

__all__ = ["ScientificaManipulator"]

_T = TypeVar("_T")
REACHED_UM = 0.5
_RECHECKS = 3
_RECHECK_S = 0.1
_ATTEMPTS = 3


class _MoveEnded(Exception):
    """The watched move ended (with ``status`` and ``reason``)."""

    def __init__(self, status: MoveStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ScientificaManipulator(Manipulator):
    """A PatchStar / MicroStar on a serial port.

    Parameters
    ----------
    name, limits, max_speed_um_s, log, clock
        As for ``Manipulator`` (real time).
    wire
        The connected protocol layer (``connect``).
    config
        Port, timeouts and the stepwise threshold.
    """

    def __init__(
        self,
        name: str,
        wire: ScientificaWire,
        config: ScientificaDriverConfig,
        limits: SoftLimits,
        max_speed_um_s: float,
        log: EventLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, limits, max_speed_um_s, log, clock)
        self._wire = wire
        self._config = config
        self.poll_s = 0.05
        self.link_timeout_s = max(1.0, 3.0 * config.timeout_s)
        self.deadline_margin_s = 2.0
        self.step_period_s = 0.1
        self.min_smooth_speed_um_s = max(config.min_speed_um_s, wire.min_speed_um_s())
        self._motion_lock = threading.Lock()
        self._active: object | None = None  # token of the move allowed to send ABS
        self._default_speed_um_s = wire.speed_um_s()
        self._accel_um_s2 = wire.acceleration_um_s2()

    @classmethod
    def from_config(
        cls,
        pipette: PipetteConfig,
        *,
        log: EventLog | None = None,
        clock: Clock | None = None,
        transport_factory: Callable[[str, int], Transport] = SerialTransport,
    ) -> ScientificaManipulator:
        """Open the pipette's controller: baud detection, version, speeds.

        Raises
        ------
        TypeError
            The pipette's driver is not ``scientifica``.
        CommunicationError
            The port cannot be opened or no Scientifica controller answers.
        """
        config = pipette.driver
        if not isinstance(config, ScientificaDriverConfig):
            raise TypeError(f"{pipette.name}: driver kind {config.kind!r} is not 'scientifica'")
        holder: list[ScientificaManipulator] = []

        def log_wire(command: str) -> None:
            if holder:
                holder[0].log.record(EventKind.COMMAND, pipette.name, "serial", command=command)

        try:
            wire = connect(
                config.port,
                config.baudrate,
                config.timeout_s,
                transport_factory=transport_factory,
                on_command=log_wire,
            )
        except CommunicationError as exc:
            raise CommunicationError(f"{pipette.name}: {exc}") from None
        try:
            manipulator = cls(
                pipette.name,
                wire,
                config,
                pipette.soft_limits,
                pipette.max_speed_um_s,
                log,
                clock,
            )
        except CommunicationError:
            wire.transport.close()
            raise
        holder.append(manipulator)
        rate = wire.transport.baudrate
        if config.baudrate is not None and rate != config.baudrate:
            manipulator.log.record(
                EventKind.INFO,
                pipette.name,
                f"controller answered at {rate} baud, not the configured {config.baudrate}",
            )
        return manipulator

    @property
    def n_axes(self) -> int:
        return 3

    @property
    def wire(self) -> ScientificaWire:
        return self._wire

    # -- backend -------------------------------------------------------------------------
    def _identify(self) -> DeviceInfo:
        identity = self._wire.identity()
        types = {"1.05": "PatchStar", "3.05": "PatchStar", "1.08": "MicroStar", "3.08": "MicroStar"}
        model = types.get(identity["type"], f"type {identity['type']}")
        return DeviceInfo(
            f"Scientifica {model}",
            identity["desc"],
            f"{identity['date']} (controller v{self._wire.version:g})",
            3,
        )

    def _read_position_um(self) -> tuple[float, ...]:
        return self._wire.position_um()

    def _is_busy(self) -> bool:
        return self._wire.is_moving()

    def _send_stop(self) -> None:
        with self._motion_lock:
            self._active = None  # no watcher may move again
        self._wire.stop()

    def _close(self) -> None:
        with self._motion_lock:
            self._active = None
        self._wire.transport.close()

    def _start_move(self, handle: MoveHandle) -> None:
        token = object()
        with self._motion_lock:
            self._active = token
        start = np.asarray(self._wire.position_um(), dtype=np.float64)
        target = np.asarray(handle.target_um, dtype=np.float64)
        distance = float(np.linalg.norm(target - start))
        stepwise = handle.speed_um_s < self.min_smooth_speed_um_s
        try:
            if stepwise:
                estimate_s = distance / handle.speed_um_s + 0.5
                self._send_abs(token, start, self.min_smooth_speed_um_s)  # proves the link
            else:
                profile = plan_trapezoid(distance, handle.speed_um_s, self._accel_um_s2)
                estimate_s = profile.duration_s + 0.3  # + polling and the re-check
                self._send_abs(token, target, handle.speed_um_s)
        except _MoveEnded as ended:  # stopped from another thread meanwhile
            self._finish_move(handle, ended.status, ended.reason)
            return
        handle.estimated_duration_s = estimate_s
        deadline_s = self.clock.now() + 1.5 * estimate_s + self.deadline_margin_s
        threading.Thread(
            target=self._watch,
            args=(handle, token, start, stepwise, deadline_s),
            name=f"scientifica-{self.name}-move",
            daemon=True,
        ).start()

    def _send_abs(self, token: object, target: np.ndarray, speed_um_s: float) -> None:
        """TOP, ABS, TOP back to default -- only while ``token`` is the active move."""
        with self._motion_lock:
            if self._active is not token:
                raise _MoveEnded(MoveStatus.INTERRUPTED, "stopped before the command was sent")
            self._wire.set_speed_um_s(speed_um_s)
            self._wire.move_abs_um(tuple(float(v) for v in target))
            try:
                self._wire.set_speed_um_s(self._default_speed_um_s)
            except CommunicationError as exc:  # the move itself was accepted
                self._fault("could not restore the default speed", exc)

    # -- the move watcher ----------------------------------------------------------------
    def _watch(
        self,
        handle: MoveHandle,
        token: object,
        start: np.ndarray,
        stepwise: bool,
        deadline_s: float,
    ) -> None:
        try:
            if stepwise:
                self._step(handle, token, start, deadline_s)
            self._settle(handle, token, deadline_s)
        except _MoveEnded as ended:
            if ended.status is MoveStatus.FAILED:
                self._stop_after_fault(token)
            self._finish_move(handle, ended.status, ended.reason)
        except ScientificaDisconnected as exc:
            self._finish_move(handle, MoveStatus.FAILED, f"serial port disconnected: {exc}")
        except CommunicationError as exc:
            self._stop_after_fault(token)
            self._finish_move(handle, MoveStatus.FAILED, f"controller refused the move: {exc}")

    def _step(
        self, handle: MoveHandle, token: object, start: np.ndarray, deadline_s: float
    ) -> None:
        target = np.asarray(handle.target_um, dtype=np.float64)
        duration_s = float(np.linalg.norm(target - start)) / handle.speed_um_s
        began_s = self.clock.now()
        fraction = 0.0
        while fraction < 1.0:
            self._await_stop(handle, deadline_s)
            self.clock.sleep(self.step_period_s)
            elapsed_s = self.clock.now() - began_s
            fraction = 1.0 if duration_s <= 0 else min(1.0, elapsed_s / duration_s)
            self._send_abs(token, start + (target - start) * fraction, self.min_smooth_speed_um_s)

    def _settle(self, handle: MoveHandle, token: object, deadline_s: float) -> None:
        target = np.asarray(handle.target_um, dtype=np.float64)
        speed_um_s = max(handle.speed_um_s, self.min_smooth_speed_um_s)
        for attempt in range(1, _ATTEMPTS + 1):
            self._await_stop(handle, deadline_s)
            miss_um = self._miss_um(handle, target, deadline_s)
            for _ in range(_RECHECKS):
                if miss_um <= REACHED_UM:
                    raise _MoveEnded(MoveStatus.FINISHED, "")
                self.clock.sleep(_RECHECK_S)  # "stopped" is reported slightly early
                miss_um = self._miss_um(handle, target, deadline_s)
            if miss_um <= REACHED_UM:
                raise _MoveEnded(MoveStatus.FINISHED, "")
            if attempt == _ATTEMPTS:
                raise _MoveEnded(
                    MoveStatus.FAILED,
                    f"stopped {miss_um:.2f} µm from the target after {_ATTEMPTS} attempts"
                    + self._limit_note(),
                )
            self.log.record(EventKind.INFO, self.name, "move missed; resending", miss_um=miss_um)
            self._send_abs(token, target, speed_um_s)

    def _limit_note(self) -> str:
        """Which limit switches are engaged, if the controller says (best effort)."""
        try:
            bits = self._wire.limit_switches()
        except CommunicationError:
            return ""
        engaged = [
            f"{'XYZ'[bit // 2]} {'high' if bit % 2 else 'low'}"
            for bit in range(6)
            if bits >> bit & 1
        ]
        return f"; limit switch engaged: {', '.join(engaged)}" if engaged else ""

    def _miss_um(self, handle: MoveHandle, target: np.ndarray, deadline_s: float) -> float:
        position = self._tolerant(handle, deadline_s, self._wire.position_um)
        return float(np.max(np.abs(np.asarray(position) - target)))

    def _await_stop(self, handle: MoveHandle, deadline_s: float) -> None:
        while self._tolerant(handle, deadline_s, self._wire.is_moving):
            self.clock.sleep(self.poll_s)

    def _tolerant(self, handle: MoveHandle, deadline_s: float, read: Callable[[], _T]) -> _T:
        """One poll, tolerating timeouts and garbage until ``link_timeout_s`` passes."""
        silent_since: float | None = None
        while True:
            if handle.is_done:
                raise _MoveEnded(handle.status, handle.reason)
            now = self.clock.now()
            if now > deadline_s:
                raise _MoveEnded(
                    MoveStatus.FAILED,
                    f"did not finish within {deadline_s - handle.started_s:.2f} s "
                    f"(estimated {handle.estimated_duration_s or 0.0:.2f} s)",
                )
            try:
                return read()
            except ScientificaDisconnected:
                raise
            except CommunicationError as exc:  # timeout, garbage, E,n to a query: transient
                silent_since = now if silent_since is None else silent_since
                if now - silent_since >= self.link_timeout_s:
                    raise _MoveEnded(
                        MoveStatus.FAILED,
                        f"link lost: no valid reply for {now - silent_since:.2f} s ({exc})",
                    ) from None
                self.log.record(EventKind.INFO, self.name, "poll failed; retrying", error=str(exc))
                self.clock.sleep(self.poll_s)

    def _stop_after_fault(self, token: object) -> None:
        with self._motion_lock:
            if self._active is not token:
                return
            self._active = None
        self.log.record(EventKind.COMMAND, self.name, "stop", cause="move fault")
        try:
            self._wire.stop()
        except CommunicationError as exc:
            self._fault("stop after a fault failed", exc)
