"""Values a move produces: its status, its handle, the device's identity, the errors.

Part of the ``Manipulator`` interface (``_protocol.py`` re-exports every name).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from patchpilot.clock import Clock

__all__ = [
    "CommunicationError",
    "DeviceInfo",
    "LimitError",
    "ManipulatorError",
    "MoveHandle",
    "MoveRefused",
    "MoveStatus",
    "SpeedError",
]


class ManipulatorError(RuntimeError):
    """Something went wrong with a manipulator; the message says which and why."""


class MoveRefused(ManipulatorError):
    """A move was refused before anything was sent; nothing moved."""


class LimitError(MoveRefused):
    """The target lies outside the soft limits."""


class SpeedError(MoveRefused):
    """The speed is not finite, or outside the range the device accepts."""


class CommunicationError(ManipulatorError):
    """The device stopped answering or answered nonsense."""


class MoveStatus(str, Enum):
    PENDING = "pending"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    """Ended early on purpose: ``stop``, a newer move, ``close``."""
    FAILED = "failed"
    """Ended without reaching the target for a reason nobody asked for (see ``reason``)."""


@dataclass(frozen=True)
class DeviceInfo:
    model: str
    serial: str
    firmware: str
    n_axes: int


class MoveHandle:
    """A move in progress; wait on it with a timeout, ask how it ended and why.

    Parameters
    ----------
    manipulator
        Name of the device (for messages).
    target_um
        Full target in device axes (µm).
    speed_um_s
        Requested speed (µm/s).
    clock
        Clock the waits run on.
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
        self.started_s = clock.now()
        self.ended_s: float | None = None
        self.estimated_duration_s: float | None = None
        """The backend's estimate of how long the move takes (s), once it has started."""
        self._clock = clock
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._status = MoveStatus.PENDING
        self._reason = ""
        self._callbacks: list[Callable[[MoveHandle], None]] = []

    @property
    def status(self) -> MoveStatus:
        return self._status

    @property
    def reason(self) -> str:
        """Why the move ended the way it did ("" while pending or when it finished)."""
        return self._reason

    @property
    def is_done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> MoveStatus:
        """Wait until the move ends or ``timeout_s`` of clock time passes.

        Returns the status; ``PENDING`` means the timeout passed first. Under ``SimClock``
        waiting advances simulated time. Callers that need the move finished treat anything
        but ``FINISHED`` as a fault.

        Raises
        ------
        ValueError
            ``timeout_s`` is negative or not finite (there is no waiting forever).
        """
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise ValueError(f"timeout must be a finite, non-negative number, got {timeout_s}")
        self._clock.wait(self._done, timeout_s)
        return self._status

    def add_done_callback(self, callback: Callable[[MoveHandle], None]) -> None:
        """Call ``callback(handle)`` when the move ends (at once if it already has).

        Callbacks run in the thread that resolves the move and must be short.
        """
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _resolve(self, status: MoveStatus, reason: str = "") -> bool:
        """Set the final status once; later calls are ignored. True if this call set it."""
        if status is MoveStatus.PENDING:
            raise ValueError("a move cannot be resolved as pending")
        with self._lock:
            if self._done.is_set():
                return False
            self._status = status
            self._reason = reason
            self.ended_s = self._clock.now()
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # a broken observer must not break the driver
                continue
        return True

    def __repr__(self) -> str:
        return (
            f"MoveHandle({self.manipulator!r}, target_um={self.target_um}, "
            f"status={self._status.value}{', ' + self._reason if self._reason else ''})"
        )
