"""Closed-loop control of several patch pipettes: calibration, tracking, planning, sequencing,
correction, and the state machines that tie them together.

The entry point is :class:`Controller`; the pieces are usable on their own (see each module).
Images reach the controller through :class:`Imaging` and :meth:`Controller.on_frame`; this
package never imports ``patchpilot.acquisition``.
"""

from patchpilot.control._protocol import Imaging
from patchpilot.control.calibration import (
    Calibration,
    CalibrationError,
    CalibrationHistory,
    CalibrationVerdict,
    fit_axes,
    review_calibration,
)
from patchpilot.control.calibration_session import CalibrationOutcome
from patchpilot.control.controller import Controller, ControllerSignals, PipetteStatus
from patchpilot.control.geometry import (
    FieldOfView,
    GeometryError,
    ManipulatorTransform,
    PipetteGeometry,
)
from patchpilot.control.planning import (
    Phase,
    PipettePlan,
    PlanError,
    Waypoint,
    WaypointReason,
    check_plan,
    plan_approach,
    plan_move_to,
    plan_retract,
)
from patchpilot.control.scheduling import Blocked, Schedule, schedule_moves
from patchpilot.control.states import CoordinatorState, PipetteState
from patchpilot.control.tracking import TipTracker, TrackerSettings

__all__ = [
    "Blocked",
    "Calibration",
    "CalibrationError",
    "CalibrationHistory",
    "CalibrationOutcome",
    "CalibrationVerdict",
    "Controller",
    "ControllerSignals",
    "CoordinatorState",
    "FieldOfView",
    "GeometryError",
    "Imaging",
    "ManipulatorTransform",
    "Phase",
    "PipetteGeometry",
    "PipettePlan",
    "PipetteState",
    "PipetteStatus",
    "PlanError",
    "Schedule",
    "TipTracker",
    "TrackerSettings",
    "Waypoint",
    "WaypointReason",
    "check_plan",
    "fit_axes",
    "plan_approach",
    "plan_move_to",
    "plan_retract",
    "review_calibration",
    "schedule_moves",
]
