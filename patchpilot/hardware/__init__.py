"""Manipulator drivers behind one interface (``Manipulator``).

Build them with ``create_manipulator`` / ``create_manipulators`` (``factory.py``); backends:
``simulated.py`` (the dry-run's hardware), ``sensapex.py``, ``scientifica/``.
"""

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
from patchpilot.hardware.factory import create_manipulator, create_manipulators
from patchpilot.hardware.simulated import SimFault, SimulatedManipulator

__all__ = [
    "CommunicationError",
    "DeviceInfo",
    "LimitError",
    "Manipulator",
    "ManipulatorError",
    "MoveHandle",
    "MoveRefused",
    "MoveStatus",
    "SimFault",
    "SimulatedManipulator",
    "SpeedError",
    "create_manipulator",
    "create_manipulators",
    "stop_all",
]
