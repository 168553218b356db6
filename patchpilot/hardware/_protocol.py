"""The one interface every manipulator backend implements.

Positions are in the manipulator's own axes, µm; speeds in µm/s; times in clock seconds. The
base class checks every move before a backend sees it (finite numbers, axis count, soft limits,
speed range) and writes every command and fault to the event log, so backends only speak their
wire protocol and watch their moves.

Threading: public methods may be called from any thread. A ``MoveHandle`` is resolved exactly
once, by whoever learns first how the move ended (the backend's monitor, ``stop``, a newer
move, ``close``).
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from patchpilot.clock import Clock, RealClock
from patchpilot.config import SoftLimits
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware._handle import (
    CommunicationError,
    DeviceInfo,
    LimitError,
    ManipulatorError,
    MoveHandle,
    MoveRefused,
    MoveStatus,
    SpeedError,
)

__all__ = [
    "CommunicationError",
    "DeviceInfo",
    "LimitError",
    "Manipulator",
    "ManipulatorError",
    "MoveHandle",
    "MoveRefused",
    "MoveStatus",
    "SpeedError",
    "stop_all",
]

UNLIMITED_AXIS_TOLERANCE_UM = 0.5
"""An axis without soft limits (uMp-4 D axis under 3-axis limits) may not move further."""


class Manipulator(ABC):
    """A micromanipulator, in its own axes.

    Subclasses implement the ``_``-prefixed backend methods; the public methods validate,
    log and delegate. A backend's ``_start_move`` sends the move and arranges for the handle
    to be resolved (``_finish_move``) when it ends; it must never leave a handle pending
    forever: every backend watches its moves against a deadline.

    Parameters
    ----------
    name
        The pipette's name; used in every log record.
    limits
        Soft limits in device axes (µm). A move leaving them is refused.
    max_speed_um_s
        Fastest speed accepted (µm/s).
    log
        Where commands and faults are recorded.
    clock
        Time source for waits and timeouts.
    min_speed_um_s
        Slowest speed accepted (µm/s); 0 accepts any positive speed.
    """

    def __init__(
        self,
        name: str,
        limits: SoftLimits,
        max_speed_um_s: float,
        log: EventLog | None = None,
        clock: Clock | None = None,
        *,
        min_speed_um_s: float = 0.0,
    ) -> None:
        self.name = name
        self.limits = limits
        self.max_speed_um_s = max_speed_um_s
        self.min_speed_um_s = min_speed_um_s
        self.log = log if log is not None else EventLog()
        self.clock = clock if clock is not None else RealClock()
        self._current_move: MoveHandle | None = None
        self._move_lock = threading.RLock()
        self._stops = 0  # counts stop() calls, to catch one racing a move being sent

    # -- backend -------------------------------------------------------------------------
    @property
    @abstractmethod
    def n_axes(self) -> int:
        """Number of axes the device has (3 or 4)."""

    @abstractmethod
    def _identify(self) -> DeviceInfo: ...

    @abstractmethod
    def _read_position_um(self) -> tuple[float, ...]: ...

    @abstractmethod
    def _start_move(self, handle: MoveHandle) -> None:
        """Send the move; arrange for ``handle`` to be resolved when it ends.

        Raises ``ManipulatorError`` if the device did not accept it.
        """

    @abstractmethod
    def _send_stop(self) -> None: ...

    @abstractmethod
    def _is_busy(self) -> bool: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the device's resources."""

    # -- public --------------------------------------------------------------------------
    @property
    def current_move(self) -> MoveHandle | None:
        """The most recent move (possibly already ended), or None."""
        return self._current_move

    def identify(self) -> DeviceInfo:
        """Model, serial number, firmware and axis count, as the device reports them.

        Raises
        ------
        ManipulatorError
            The device did not answer (logged as a fault).
        """
        try:
            info = self._identify()
        except ManipulatorError as exc:
            self._fault("identify failed", exc)
            raise
        self.log.record(
            EventKind.INFO,
            self.name,
            "identified",
            model=info.model,
            serial=info.serial,
            firmware=info.firmware,
            n_axes=info.n_axes,
        )
        return info

    def position_um(self) -> tuple[float, ...]:
        """The current position (µm, device axes, ``n_axes`` values).

        Raises
        ------
        CommunicationError
            No answer, or an answer that is not ``n_axes`` finite numbers (logged).
        """
        try:
            position = tuple(float(v) for v in self._read_position_um())
            if len(position) != self.n_axes or not all(math.isfinite(v) for v in position):
                raise CommunicationError(
                    f"{self.name}: device reported an invalid position {position} "
                    f"(expected {self.n_axes} finite values)"
                )
        except ManipulatorError as exc:
            self._fault("position read failed", exc)
            raise
        return position

    def is_busy(self) -> bool:
        """True while the device reports that it is moving.

        Raises
        ------
        ManipulatorError
            The device did not answer (logged).
        """
        try:
            return self._is_busy()
        except ManipulatorError as exc:
            self._fault("busy query failed", exc)
            raise

    def check_move(self, target_um: Sequence[float], speed_um_s: float) -> tuple[float, ...]:
        """Validate a move without sending it; returns the full target (``n_axes`` values).

        A 3-value target on a 4-axis device keeps the 4th axis where it is. An axis without
        soft limits may not move (by more than 0.5 µm).

        Raises
        ------
        MoveRefused
            NaN or infinite coordinates, wrong axis count, a speed out of range, or a target
            outside the soft limits (``LimitError``, ``SpeedError``).
        CommunicationError
            The current position was needed and could not be read.
        """
        try:
            target = tuple(float(v) for v in target_um)
        except (TypeError, ValueError):
            raise MoveRefused(f"{self.name}: target {target_um!r} is not numeric") from None
        if len(target) not in (3, self.n_axes):
            raise MoveRefused(
                f"{self.name}: target has {len(target)} axes, device has {self.n_axes}"
            )
        bad = [i for i, v in enumerate(target) if not math.isfinite(v)]
        if bad:
            raise MoveRefused(f"{self.name}: target {target} has non-finite axis {bad}")
        self._check_speed(speed_um_s)
        for axis, (value, low, high) in enumerate(
            zip(target, self.limits.min_um, self.limits.max_um, strict=False)
        ):
            if not low <= value <= high:
                raise LimitError(
                    f"{self.name}: axis {axis} target {value:.2f} µm is outside the soft "
                    f"limits [{low:g}, {high:g}]"
                )
        n_limited = len(self.limits.min_um)
        if len(target) < self.n_axes or n_limited < len(target):
            here = self.position_um()
            target = target + here[len(target) :]
            for axis in range(n_limited, self.n_axes):
                if abs(target[axis] - here[axis]) > UNLIMITED_AXIS_TOLERANCE_UM:
                    raise LimitError(
                        f"{self.name}: axis {axis} has no soft limits configured, so it may not "
                        f"move (target {target[axis]:.2f} µm, now {here[axis]:.2f} µm); "
                        f"configure {self.n_axes}-axis soft_limits to move it"
                    )
        return target

    def _check_speed(self, speed_um_s: float) -> None:
        if not (math.isfinite(speed_um_s) and speed_um_s > 0):
            raise SpeedError(f"{self.name}: speed {speed_um_s} µm/s must be positive and finite")
        if speed_um_s > self.max_speed_um_s:
            raise SpeedError(
                f"{self.name}: speed {speed_um_s:g} µm/s exceeds the maximum "
                f"{self.max_speed_um_s:g} µm/s"
            )
        if speed_um_s < self.min_speed_um_s:
            raise SpeedError(
                f"{self.name}: speed {speed_um_s:g} µm/s is below the device's minimum "
                f"{self.min_speed_um_s:g} µm/s"
            )

    def move_to(self, target_um: Sequence[float], speed_um_s: float) -> MoveHandle:
        """Start an absolute move; returns a handle to wait on.

        A move still in progress is superseded (its handle ends ``INTERRUPTED``).

        Raises
        ------
        MoveRefused
            Before anything is sent (see ``check_move``); the refusal is logged.
        ManipulatorError
            The device did not accept the command (logged; the handle is ``FAILED``).
        """
        try:
            target = self.check_move(target_um, speed_um_s)
        except MoveRefused as exc:
            self.log.record(
                EventKind.FAULT,
                self.name,
                "move refused",
                reason=str(exc),
                target_um=_loggable(target_um),
                speed_um_s=speed_um_s,
            )
            raise
        with self._move_lock:
            previous = self._current_move
            if previous is not None:
                previous._resolve(MoveStatus.INTERRUPTED, "superseded by a new move")
            handle = MoveHandle(self.name, target, speed_um_s, self.clock)
            self.log.record(
                EventKind.COMMAND, self.name, "move", target_um=target, speed_um_s=speed_um_s
            )
            self._current_move = handle
            stops_before = self._stops
            try:
                self._start_move(handle)
            except ManipulatorError as exc:
                handle._resolve(MoveStatus.FAILED, f"move command failed: {exc}")
                self._fault("move command failed", exc)
                raise
            if self._stops != stops_before:
                self._restop(handle)
        return handle

    def _restop(self, handle: MoveHandle) -> None:
        """A stop arrived while the move was being sent: the move may have landed after it."""
        handle._resolve(MoveStatus.INTERRUPTED, "stopped while the move was being sent")
        self.log.record(
            EventKind.COMMAND, self.name, "stop", cause="stop arrived while a move was being sent"
        )
        try:
            self._send_stop()
        except ManipulatorError as exc:
            self._fault("stop failed", exc)

    def move_by(self, delta_um: Sequence[float], speed_um_s: float) -> MoveHandle:
        """Start a relative move from the current position (validated like ``move_to``).

        Raises
        ------
        MoveRefused
            A non-finite or wrongly sized step, or a target ``move_to`` refuses.
        ManipulatorError
            The position could not be read or the device did not accept the move.
        """
        try:
            delta = tuple(float(v) for v in delta_um)
            if len(delta) not in (3, self.n_axes):
                raise MoveRefused(
                    f"{self.name}: step has {len(delta)} axes, device has {self.n_axes}"
                )
            if not all(math.isfinite(v) for v in delta):
                raise MoveRefused(f"{self.name}: step {delta} has a non-finite axis")
            self._check_speed(speed_um_s)
        except (TypeError, ValueError):
            exc: MoveRefused = MoveRefused(f"{self.name}: step {delta_um!r} is not numeric")
            self.log.record(EventKind.FAULT, self.name, "move refused", reason=str(exc))
            raise exc from None
        except MoveRefused as refused:
            self.log.record(EventKind.FAULT, self.name, "move refused", reason=str(refused))
            raise
        here = self.position_um()
        target = [p + d for p, d in zip(here, delta, strict=False)] + list(here[len(delta) :])
        return self.move_to(target, speed_um_s)

    def stop(self) -> None:
        """Stop now; the current move ends ``INTERRUPTED`` ("stopped").

        Raises
        ------
        ManipulatorError
            The device could not be told (logged); the current move ends ``FAILED``, since
            the device may still be moving.
        """
        self._stops += 1
        self.log.record(EventKind.COMMAND, self.name, "stop")
        try:
            self._send_stop()
        except ManipulatorError as exc:
            self._fault("stop failed", exc)
            move = self._current_move
            if move is not None:
                move._resolve(
                    MoveStatus.FAILED, f"stop could not be sent ({exc}); it may still be moving"
                )
            raise
        move = self._current_move
        if move is not None:
            move._resolve(MoveStatus.INTERRUPTED, "stopped")

    def close(self) -> None:
        """Release the device; a move still pending ends ``INTERRUPTED`` ("driver closed")."""
        move = self._current_move
        if move is not None:
            move._resolve(MoveStatus.INTERRUPTED, "driver closed")
        self._close()
        self.log.record(EventKind.INFO, self.name, "closed")

    def __enter__(self) -> Manipulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for backends ------------------------------------------------------------
    def _finish_move(self, handle: MoveHandle, status: MoveStatus, reason: str = "") -> None:
        """Resolve ``handle`` (if still pending) and log a fault when it did not finish."""
        if not handle._resolve(status, reason):
            return
        if status is MoveStatus.FAILED:
            self.log.record(
                EventKind.FAULT,
                self.name,
                "move failed",
                reason=reason,
                target_um=handle.target_um,
            )
        else:
            self.log.record(
                EventKind.INFO,
                self.name,
                f"move {status.value}",
                reason=reason,
                target_um=handle.target_um,
                duration_s=(handle.ended_s or handle.started_s) - handle.started_s,
            )

    def _fault(self, message: str, exc: BaseException) -> None:
        self.log.record(
            EventKind.FAULT, self.name, message, error=str(exc), error_type=type(exc).__name__
        )


def _loggable(values: object) -> object:
    try:
        return [float(v) for v in values]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return repr(values)


def stop_all(manipulators: Iterable[Manipulator], timeout_s: float = 5.0) -> dict[str, str | None]:
    """Send stop to every manipulator in parallel, even when some fail or hang.

    Parameters
    ----------
    manipulators
        The devices to stop.
    timeout_s
        Real seconds to wait for all of them together.

    Returns
    -------
    dict
        Each name mapped to None (stopped) or the error text. Never raises.
    """
    devices = list(manipulators)
    results: dict[str, str | None] = {}
    lock = threading.Lock()
    everyone_done = threading.Event()
    pending = [len(devices)]

    def stop_one(device: Manipulator) -> None:
        outcome: str | None = "stop raised an unexpected error"
        try:
            device.stop()
            outcome = None
        except Exception as exc:  # report, never propagate
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            with lock:
                results[device.name] = outcome
                pending[0] -= 1
                if pending[0] == 0:
                    everyone_done.set()

    if not devices:
        return results
    for device in devices:
        threading.Thread(
            target=stop_one, args=(device,), name=f"stop-{device.name}", daemon=True
        ).start()
    everyone_done.wait(timeout=max(0.0, timeout_s))
    with lock:
        final = dict(results)
    for device in devices:
        final.setdefault(device.name, f"stop did not return within {timeout_s:g} s")
    return final
