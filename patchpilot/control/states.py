"""The state machines as data: states, and transition tables for ``transitions.Machine``.

A pipette's machine (``PipetteState``, ``PIPETTE_TRANSITIONS``) and the coordinator's over
all pipettes (``CoordinatorState``, ``COORDINATOR_TRANSITIONS``). ``pipette.py`` and
``coordinator.py`` declare the triggers as methods and build one machine each from these
tables; a trigger that is not valid in the current state raises ``transitions.MachineError``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = [
    "COORDINATOR_TRANSITIONS",
    "PIPETTE_TRANSITIONS",
    "CoordinatorState",
    "PipetteState",
]


class PipetteState(str, Enum):
    IDLE = "idle"
    """Not calibrated, or released without a calibration; moves only by hand."""
    CALIBRATING = "calibrating"
    READY = "ready"
    """Calibrated and still; may be given a plan."""
    MOVING = "moving"
    """Following a plan above the tissue (or retracting, going home)."""
    APPROACHING = "approaching"
    """Advancing along its axis toward the target."""
    CORRECTING = "correcting"
    """Still; the tip is being measured and corrected from the images."""
    AT_TARGET = "at_target"
    PAUSED = "paused"
    """Automation halted; waits for the operator (resume, take over, retract)."""
    MANUAL = "manual"
    """The operator drives it; automation is frozen for it."""
    FAULT = "fault"
    STOPPED = "stopped"
    """Stop-all was pressed; nothing moves until re-armed."""


_S = PipetteState
_AUTOMATIC = [_S.MOVING, _S.APPROACHING, _S.CORRECTING]

PIPETTE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "calibrate", "source": [_S.IDLE, _S.READY], "dest": _S.CALIBRATING},
    {"trigger": "calibrated", "source": _S.CALIBRATING, "dest": _S.READY},
    {
        "trigger": "calibration_failed",
        "source": _S.CALIBRATING,
        "dest": _S.READY,
        "conditions": "is_calibrated",
    },
    {"trigger": "calibration_failed", "source": _S.CALIBRATING, "dest": _S.IDLE},
    {"trigger": "confirm_calibration", "source": [_S.IDLE, _S.READY], "dest": _S.READY},
    {"trigger": "start_move", "source": [_S.READY, _S.AT_TARGET], "dest": _S.MOVING},
    {"trigger": "arrive", "source": _S.MOVING, "dest": _S.READY},
    {"trigger": "reach_checkpoint", "source": [_S.MOVING, _S.APPROACHING], "dest": _S.CORRECTING},
    {"trigger": "advance", "source": [_S.CORRECTING, _S.MOVING], "dest": _S.APPROACHING},
    {"trigger": "continue_travel", "source": _S.CORRECTING, "dest": _S.MOVING},
    {"trigger": "need_correction", "source": _S.APPROACHING, "dest": _S.CORRECTING},
    {"trigger": "reach_target", "source": _S.CORRECTING, "dest": _S.AT_TARGET},
    {"trigger": "pause", "source": _AUTOMATIC, "dest": _S.PAUSED},
    {"trigger": "replan", "source": [*_AUTOMATIC, _S.PAUSED], "dest": _S.READY},
    {
        "trigger": "take_over",
        "source": [_S.IDLE, _S.READY, *_AUTOMATIC, _S.AT_TARGET, _S.PAUSED, _S.FAULT],
        "dest": _S.MANUAL,
    },
    {"trigger": "release", "source": _S.MANUAL, "dest": _S.READY, "conditions": "is_calibrated"},
    {"trigger": "release", "source": _S.MANUAL, "dest": _S.IDLE},
    {
        "trigger": "fail",
        "source": [
            _S.IDLE,
            _S.CALIBRATING,
            _S.READY,
            *_AUTOMATIC,
            _S.AT_TARGET,
            _S.PAUSED,
            _S.MANUAL,
        ],
        "dest": _S.FAULT,
    },
    {"trigger": "clear_fault", "source": _S.FAULT, "dest": _S.READY, "conditions": "is_calibrated"},
    {"trigger": "clear_fault", "source": _S.FAULT, "dest": _S.IDLE},
    {"trigger": "stop", "source": "*", "dest": _S.STOPPED},
    {"trigger": "rearm", "source": _S.STOPPED, "dest": _S.READY, "conditions": "is_calibrated"},
    {"trigger": "rearm", "source": _S.STOPPED, "dest": _S.IDLE},
]
"""Per pipette. ``is_calibrated`` is a predicate the pipette model declares."""


class CoordinatorState(str, Enum):
    IDLE = "idle"
    CALIBRATING = "calibrating"
    RUNNING = "running"
    """Pipettes with targets are being sequenced and moved."""
    PAUSED = "paused"
    STOPPED = "stopped"


_C = CoordinatorState

COORDINATOR_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "begin_calibration", "source": _C.IDLE, "dest": _C.CALIBRATING},
    {"trigger": "end_calibration", "source": _C.CALIBRATING, "dest": _C.IDLE},
    {"trigger": "start", "source": _C.IDLE, "dest": _C.RUNNING},
    {"trigger": "finish", "source": _C.RUNNING, "dest": _C.IDLE},
    {"trigger": "pause_all", "source": _C.RUNNING, "dest": _C.PAUSED},
    {"trigger": "resume_all", "source": _C.PAUSED, "dest": _C.RUNNING},
    {"trigger": "stop_all", "source": "*", "dest": _C.STOPPED},
    {"trigger": "rearm", "source": _C.STOPPED, "dest": _C.IDLE},
]
"""Over all pipettes."""
