"""The one interface every manipulator backend implements.

Positions are in the manipulator's own axes, µm; speeds in µm/s. The base class checks every
move before a backend sees it (finite numbers, axis count, soft limits, speed limit) and writes
every command and fault to the event log, so backends only speak their wire protocol.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from patchpilot.clock import Clock, RealClock
from patchpilot.config import SoftLimits
from patchpilot.events import EventKind, EventLog

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


class ManipulatorError(RuntimeError):
    """Something went wrong with a manipulator; the message says which and why."""


class MoveRefused(ManipulatorError):
    """A move was refused before anything was sent; nothing moved."""


class LimitError(MoveRefused):
    """The target lies outside the soft limits."""


class SpeedError(MoveRefused):
    """The speed is not positive, not finite, or above the configured maximum."""


class CommunicationError(ManipulatorError):
    """The device stopped answering or answered nonsense."""


class MoveStatus(str, Enum):
    PENDING = "pending"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class DeviceInfo:
    model: str
    serial: str
    firmware: str
    n_axes: int


class MoveHandle:
    """A move in progress. Backends call ``_resolve`` exactly once when it ends.

    ``wait`` always takes a timeout: no caller can block forever on a device.
    """

    def __init__(
        self,
        manipulator: str,
        target_um: tuple[float, ...],
        speed_um_s: float,
        clock: Clock,
    ) -> None:
        self.manipulator = manipulator
        self.target_um = target_um
        self.speed_um_s = speed_um_s
        self._clock = clock
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._status = MoveStatus.PENDING
        self._reason = ""

    @property
    def status(self) -> MoveStatus:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def is_done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> MoveStatus:
        """Wait until the move ends or ``timeout_s`` passes (clock time).

        Returns the status: ``PENDING`` means the timeout passed first. Callers that need the
        move finished treat anything but ``FINISHED`` as a fault.
        """
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise ValueError(f"timeout must be a finite, non-negative number, got {timeout_s}")
        self._clock.wait(self._done, timeout_s)
        return self._status

    def _resolve(self, status: MoveStatus, reason: str = "") -> bool:
        """Set the final status once; later calls are ignored. True if this call set it."""
        if status is MoveStatus.PENDING:
            raise ValueError("a move cannot be resolved as pending")
        with self._lock:
            if self._done.is_set():
                return False
            self._status = status
            self._reason = reason
            self._done.set()
            return True

    def __repr__(self) -> str:
        return (
            f"MoveHandle({self.manipulator!r}, target_um={self.target_um}, "
            f"status={self._status.value}{', ' + self._reason if self._reason else ''})"
        )


class Manipulator(ABC):
    """A micromanipulator, in its own axes.

    Subclasses implement the ``_``-prefixed backend methods; the public methods validate,
    log and delegate.

    Parameters
    ----------
    name
        The pipette's name; used in every log record.
    limits
        Soft limits in device axes (µm). A move leaving them is refused.
    max_speed_um_s
        Fastest speed accepted.
    log
        Where commands and faults are recorded.
    clock
        Time source for waits and timeouts.
    """

    def __init__(
        self,
        name: str,
        limits: SoftLimits,
        max_speed_um_s: float,
        log: EventLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.max_speed_um_s = max_speed_um_s
        self.log = log if log is not None else EventLog()
        self.clock = clock if clock is not None else RealClock()
        self._current_move: MoveHandle | None = None

    # -- backend -------------------------------------------------------------------------
    @property
    @abstractmethod
    def n_axes(self) -> int:
        """Number of axes the device reports (3 or 4)."""

    @abstractmethod
    def _identify(self) -> DeviceInfo: ...

    @abstractmethod
    def _read_position_um(self) -> tuple[float, ...]: ...

    @abstractmethod
    def _start_move(self, handle: MoveHandle) -> None:
        """Send the move; resolve ``handle`` later (finished/interrupted/failed)."""

    @abstractmethod
    def _send_stop(self) -> None: ...

    @abstractmethod
    def _is_busy(self) -> bool: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release the device's resources."""

    # -- public --------------------------------------------------------------------------
    def identify(self) -> DeviceInfo:
        info = self._identify()
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
        """The current position (µm, device axes)."""
        try:
            return self._read_position_um()
        except ManipulatorError as exc:
            self._fault("position read failed", exc)
            raise

    def is_busy(self) -> bool:
        return self._is_busy()

    def check_move(self, target_um: Sequence[float], speed_um_s: float) -> tuple[float, ...]:
        """Validate a move without sending it; returns the full target (all axes).

        Raises
        ------
        MoveRefused
            NaN or infinite coordinates, wrong axis count, a speed out of range, or a target
            outside the soft limits.
        """
        target = tuple(float(v) for v in target_um)
        n_limited = len(self.limits.min_um)
        if len(target) not in (n_limited, self.n_axes):
            raise MoveRefused(
                f"{self.name}: target has {len(target)} axes, device has {self.n_axes}"
            )
        bad = [i for i, v in enumerate(target) if not math.isfinite(v)]
        if bad:
            raise MoveRefused(f"{self.name}: target {target} has non-finite axis {bad}")
        if not (math.isfinite(speed_um_s) and speed_um_s > 0):
            raise SpeedError(f"{self.name}: speed {speed_um_s} µm/s must be positive and finite")
        if speed_um_s > self.max_speed_um_s:
            raise SpeedError(
                f"{self.name}: speed {speed_um_s:g} µm/s exceeds the maximum "
                f"{self.max_speed_um_s:g} µm/s"
            )
        for axis, (value, low, high) in enumerate(
            zip(target, self.limits.min_um, self.limits.max_um, strict=False)
        ):
            if not low <= value <= high:
                raise LimitError(
                    f"{self.name}: axis {axis} target {value:.2f} µm is outside the soft "
                    f"limits [{low:g}, {high:g}]"
                )
        if len(target) < self.n_axes:  # keep unlisted axes (e.g. uMp-4's D axis) where they are
            target = target + tuple(self._read_position_um()[len(target) :])
        return target

    def move_to(self, target_um: Sequence[float], speed_um_s: float) -> MoveHandle:
        """Start an absolute move; returns a handle to wait on.

        Raises
        ------
        MoveRefused
            Before anything is sent (see ``check_move``); the refusal is logged.
        ManipulatorError
            The device did not accept the command.
        """
        try:
            target = self.check_move(target_um, speed_um_s)
        except MoveRefused as exc:
            self.log.record(
                EventKind.FAULT,
                self.name,
                "move refused",
                reason=str(exc),
                target_um=list(target_um),
                speed_um_s=speed_um_s,
            )
            raise
        handle = MoveHandle(self.name, target, speed_um_s, self.clock)
        self.log.record(
            EventKind.COMMAND, self.name, "move", target_um=target, speed_um_s=speed_um_s
        )
        try:
            self._start_move(handle)
        except ManipulatorError as exc:
            handle._resolve(MoveStatus.FAILED, str(exc))
            self._fault("move command failed", exc)
            raise
        self._current_move = handle
        return handle

    def move_by(self, delta_um: Sequence[float], speed_um_s: float) -> MoveHandle:
        """Start a relative move from the current position (validated like ``move_to``)."""
        delta = [float(v) for v in delta_um]
        if not all(math.isfinite(v) for v in delta):
            exc = MoveRefused(f"{self.name}: step {delta} has a non-finite axis")
            self.log.record(EventKind.FAULT, self.name, "move refused", reason=str(exc))
            raise exc
        here = self.position_um()
        target = [p + d for p, d in zip(here, delta, strict=False)]
        return self.move_to(target, speed_um_s)

    def stop(self) -> None:
        """Stop now. Raises ManipulatorError if the device could not be told."""
        self.log.record(EventKind.COMMAND, self.name, "stop")
        try:
            self._send_stop()
        except ManipulatorError as exc:
            self._fault("stop failed", exc)
            raise
        move = self._current_move
        if move is not None:
            move._resolve(MoveStatus.INTERRUPTED, "stopped")

    def close(self) -> None:
        self._close()

    def _fault(self, message: str, exc: BaseException) -> None:
        self.log.record(
            EventKind.FAULT, self.name, message, error=str(exc), error_type=type(exc).__name__
        )


def stop_all(manipulators: Iterable[Manipulator]) -> dict[str, str | None]:
    """Send stop to every manipulator, in parallel, even when some fail.

    Returns each name mapped to None (stopped) or the error text. Never raises.
    """
    devices = list(manipulators)
    results: dict[str, str | None] = {}
    lock = threading.Lock()

    def stop_one(device: Manipulator) -> None:
        try:
            device.stop()
            outcome: str | None = None
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            results[device.name] = outcome

    threads = [threading.Thread(target=stop_one, args=(d,), daemon=True) for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5.0)
    for device in devices:
        results.setdefault(device.name, "stop did not return within 5 s")
    return results
