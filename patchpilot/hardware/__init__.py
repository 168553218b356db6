"""Manipulator drivers behind one interface (``Manipulator``)."""

from patchpilot.hardware._protocol import (
    CommunicationError,
    DeviceInfo,
    LimitError,
    Manipulator,
    ManipulatorError,
    MoveHandle,
    MoveRefused,
    MoveStatus,
    SpeedError,
    stop_all,
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
