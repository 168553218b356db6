"""Sensapex uMp manipulators through the ``sensapex`` SDK (``UMP``, ``SensapexDevice``).

The SDK (1.504.3) has known traps that this driver defends against:

1. A failed move on a 3-axis device never sets ``MoveRequest.finished_event`` (a shape bug in
   its failure path): every wait here has a deadline, ``estimated duration x 1.5 + margin``,
   after which the move is FAILED with a reason.
2. When the link drops mid-move the move never finishes and ``is_busy()`` says False: the
   monitor reads the position itself; ``command_timeout_s`` without an answer is "link lost",
   and ``is_busy`` here asks the drive status directly, so a timeout raises.
3. Its retry in ``UMP.call`` passes an extra argument and warns: reads are retried here once
   and any SDK exception becomes a ``CommunicationError``.
4. No wrapper for ``um_stop_all``: it is called through ``UMP.call`` when a device's own stop
   fails, so every device in the group gets the broadcast.

Also: speeds below 1 µm/s crash the uMp and are refused; like acq4, moves faster than 10 µm/s
are slowed so that none lasts less than 0.2 s (shorter moves land badly); uMp-4s sometimes
report 3 axes, which ``SensapexDriverConfig.n_axes`` overrides.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from ctypes import c_int
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from patchpilot.config import PipetteConfig, SensapexDriverConfig, SoftLimits
from patchpilot.events import EventKind
from patchpilot.hardware._protocol import (
    CommunicationError,
    DeviceInfo,
    Manipulator,
    ManipulatorError,
    MoveHandle,
    MoveStatus,
)

if TYPE_CHECKING:
    from patchpilot.clock import Clock
    from patchpilot.events import EventLog

__all__ = ["SensapexManipulator", "open_ump"]

T = TypeVar("T")
MIN_SPEED_UM_S = 1.0
SHORTEST_MOVE_S = 0.2
_POLL_S = 0.05
_READ_AGE_MS = 100  # a cached position younger than this is good enough while moving
_REACHED_UM = 1.0  # the SDK's own fail threshold
_INTERRUPTIONS = ("started another move", "stop requested")


def open_ump(config: SensapexDriverConfig) -> Any:
    """The SDK's ``UMP`` singleton for ``config``'s address and group.

    Raises
    ------
    CommunicationError
        The SDK library could not be loaded or the UDP socket not opened.
    """
    try:
        from sensapex import UMP

        return UMP.get_ump(address=config.address.encode("ascii"), group=config.group)
    except Exception as exc:
        raise CommunicationError(
            f"cannot open the Sensapex SDK on {config.address} group {config.group}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class SensapexManipulator(Manipulator):
    """One uMp manipulator.

    Parameters
    ----------
    name, limits, max_speed_um_s, log, clock
        As for ``Manipulator`` (``clock`` must be real time: the SDK is).
    ump
        The SDK's ``UMP`` object.
    config
        Device id, axis-count override and timeouts.

    Raises
    ------
    CommunicationError
        The device id is not on the network.
    """

    def __init__(
        self,
        name: str,
        ump: Any,
        config: SensapexDriverConfig,
        limits: SoftLimits,
        max_speed_um_s: float,
        log: EventLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, limits, max_speed_um_s, log, clock, min_speed_um_s=MIN_SPEED_UM_S)
        self._ump = ump
        self._config = config
        self.device_id = config.device_id
        self.command_timeout_s = config.command_timeout_s
        self.deadline_margin_s = 1.0
        found = self._sdk("list devices", lambda: ump.list_devices())
        if self.device_id not in found:
            raise CommunicationError(
                f"{name}: no Sensapex device {self.device_id} answered on {config.address} "
                f"group {config.group} (found: {found or 'none'}); check the id on the "
                f"touch screen, the group and the 169.254.x.x network link"
            )
        self._device = self._sdk("open device", lambda: ump.get_device(self.device_id))
        if config.n_axes is not None:
            self._device.set_n_axes(config.n_axes)  # uMp-4 detected as 3 axes
        self._n_axes = int(self._sdk("axis count", lambda: self._device.n_axes()))

    @classmethod
    def from_config(
        cls,
        pipette: PipetteConfig,
        *,
        log: EventLog | None = None,
        clock: Clock | None = None,
        ump: Any = None,
    ) -> SensapexManipulator:
        """Open the pipette's uMp (``ump`` defaults to the SDK singleton for its address).

        Raises
        ------
        TypeError
            The pipette's driver is not ``sensapex``.
        CommunicationError
            The SDK could not be opened or the device did not answer.
        """
        config = pipette.driver
        if not isinstance(config, SensapexDriverConfig):
            raise TypeError(f"{pipette.name}: driver kind {config.kind!r} is not 'sensapex'")
        if ump is None:
            ump = open_ump(config)
        return cls(
            pipette.name, ump, config, pipette.soft_limits, pipette.max_speed_um_s, log, clock
        )

    @property
    def n_axes(self) -> int:
        return self._n_axes

    # -- SDK access ----------------------------------------------------------------------
    def _sdk(self, what: str, call: Callable[[], T], attempts: int = 1) -> T:
        """Run one SDK call; any exception becomes a CommunicationError naming it."""
        error: Exception | None = None
        for _ in range(attempts):
            try:
                return call()
            except Exception as exc:  # UMError, the SDK's retry warning, ctypes errors
                error = exc
        raise CommunicationError(
            f"{self.name}: Sensapex device {self.device_id}: {what} failed "
            f"({type(error).__name__}: {error})"
        )

    def _identify(self) -> DeviceInfo:
        version = self._sdk(
            "firmware query", lambda: self._ump.get_firmware_version(self.device_id)
        )
        firmware = ".".join(str(part) for part in version)
        return DeviceInfo(
            f"Sensapex uMp-{self._n_axes}", f"device id {self.device_id}", firmware, self._n_axes
        )

    def _read_position_um(self, age_ms: int = -1) -> tuple[float, ...]:
        position = self._sdk(
            "position read", lambda: self._device.get_pos(timeout=age_ms), attempts=2
        )
        return tuple(float(v) for v in position)

    def _is_busy(self) -> bool:
        # Not SensapexDevice.is_busy(): it answers False when the device does not answer.
        status = self._sdk(
            "drive status",
            lambda: self._ump.call("um_get_drive_status", c_int(self.device_id)),
            attempts=2,
        )
        return int(status) > 0

    def _send_stop(self) -> None:
        try:
            self._sdk("stop", lambda: self._device.stop(reason="patchpilot stop"))
        except CommunicationError as exc:
            self.log.record(EventKind.COMMAND, self.name, "stop all (broadcast fallback)")
            try:
                self._sdk("stop-all broadcast", lambda: self._ump.call("um_stop_all"))
                extra = "; um_stop_all broadcast sent as a fallback"
            except CommunicationError as broadcast_exc:
                extra = f"; the um_stop_all fallback failed too ({broadcast_exc})"
            raise CommunicationError(f"{exc}{extra}") from None

    def broadcast_stop_all(self) -> None:
        """Stop every device in this SDK group at once (``um_stop_all``; no acknowledgement).

        Raises
        ------
        CommunicationError
            The broadcast could not be sent.
        """
        self.log.record(EventKind.COMMAND, self.name, "stop all (broadcast)")
        self._sdk("stop-all broadcast", lambda: self._ump.call("um_stop_all"))

    def _start_move(self, handle: MoveHandle) -> None:
        start = np.asarray(self._read_position_um(), dtype=np.float64)
        target = np.asarray(handle.target_um, dtype=np.float64)
        distance = float(np.linalg.norm(target - start))
        speed = handle.speed_um_s
        if speed > 10.0 and distance > 0:
            speed = max(10.0, min(speed, distance / SHORTEST_MOVE_S))
        request = self._sdk(
            "move command",
            lambda: self._device.goto_pos(
                [float(v) for v in target], speed, simultaneous=True, linear=True
            ),
        )
        estimate_s = distance / speed + 0.2  # + acceleration and the SDK's 30 ms polling
        handle.estimated_duration_s = estimate_s
        deadline_s = self.clock.now() + 1.5 * estimate_s + self.deadline_margin_s
        threading.Thread(
            target=self._watch,
            args=(handle, request, deadline_s),
            name=f"sensapex-{self.name}-move",
            daemon=True,
        ).start()

    # -- the move monitor ----------------------------------------------------------------
    def _watch(self, handle: MoveHandle, request: Any, deadline_s: float) -> None:
        last_answer_s = self.clock.now()
        last_position: tuple[float, ...] | None = None
        last_error = ""
        while not handle.is_done:
            if request.finished_event.wait(timeout=_POLL_S):
                self._conclude(handle, request)
                return
            now = self.clock.now()
            try:
                last_position = self._read_position_um(age_ms=_READ_AGE_MS)
                last_answer_s = now
            except CommunicationError as exc:
                last_error = str(exc)
            if now - last_answer_s > self.command_timeout_s:
                self._fail(
                    handle,
                    f"link lost: device {self.device_id} has not answered for "
                    f"{now - last_answer_s:.2f} s during the move ({last_error})",
                )
                return
            if now > deadline_s:
                self._fail(handle, self._overdue_reason(handle, request, last_position))
                return

    def _overdue_reason(
        self, handle: MoveHandle, request: Any, position: tuple[float, ...] | None
    ) -> str:
        estimate = handle.estimated_duration_s or 0.0
        where = "unknown" if position is None else f"{[round(v, 2) for v in position]} µm"
        attempts = int(getattr(request, "attempts", 0))
        gave_up = (
            f"; the SDK made {attempts} attempts and never signalled completion"
            if attempts >= int(getattr(request, "max_attempts", 5))
            else ""
        )
        return (
            f"no completion {1.5 * estimate + self.deadline_margin_s:.2f} s after the start "
            f"(estimated {estimate:.2f} s); position {where}, target "
            f"{[round(v, 2) for v in handle.target_um]} µm{gave_up}"
        )

    def _conclude(self, handle: MoveHandle, request: Any) -> None:
        if handle.is_done:
            return
        if request.interrupted:
            reason = str(request.interrupt_reason)
            if any(marker in reason for marker in _INTERRUPTIONS):
                self._finish_move(handle, MoveStatus.INTERRUPTED, f"sensapex: {reason}")
            else:
                self._finish_move(handle, MoveStatus.FAILED, f"sensapex: {reason}")
            return
        final = request.last_pos
        if final is None:
            self._finish_move(
                handle,
                MoveStatus.FAILED,
                f"finished but the final position could not be read ({request.last_pos_exception})",
            )
            return
        errors = [abs(float(a) - b) for a, b in zip(final, handle.target_um, strict=False)]
        worst = max(errors, default=0.0)
        if not math.isfinite(worst) or worst > _REACHED_UM:
            self._finish_move(
                handle,
                MoveStatus.FAILED,
                f"finished {worst:.2f} µm from the target (final {list(final)} µm)",
            )
        else:
            self._finish_move(handle, MoveStatus.FINISHED)

    def _fail(self, handle: MoveHandle, reason: str) -> None:
        if handle.is_done:
            return
        self.log.record(EventKind.COMMAND, self.name, "stop", cause="move fault")
        try:
            self._sdk("stop", lambda: self._ump.call("um_stop", c_int(self.device_id)))
        except ManipulatorError as exc:
            reason += f"; stop could not be sent ({exc})"
        self._finish_move(handle, MoveStatus.FAILED, reason)
