"""One pipette as the state machines see it: triggers, what is known about it, its motion.

``PipetteModel`` declares the triggers of ``states.PIPETTE_TRANSITIONS`` (bound by
``transitions`` with ``model_override=True``), holds the calibration, goal, plan and current
move, converts between sample and device coordinates through the calibration plus the tracked
offset (this is the ``CorrectionSubject`` a correction run works on), and stops, faults or
pauses the pipette. ``pipette.PipetteUnit`` adds the execution of plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from patchpilot.config import PipetteConfig, SafetyConfig
from patchpilot.control.calibration import Calibration, CalibrationHistory
from patchpilot.control.correction import (
    CorrectionRun,
    CorrectionSettings,
)
from patchpilot.control.geometry import PipetteGeometry
from patchpilot.control.planning import PipettePlan
from patchpilot.control.states import PipetteState
from patchpilot.control.tracking import TipTracker
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware import Manipulator, ManipulatorError, MoveHandle

__all__ = ["Goal", "GoalKind", "PipetteModel"]

Vector = NDArray[np.float64]


class GoalKind(str, Enum):
    APPROACH = "approach"
    RETRACT = "retract"
    HOME = "home"


@dataclass(frozen=True)
class Goal:
    """What automation is doing with a pipette; ``position_um`` for approach and home."""

    kind: GoalKind
    position_um: Vector | None = None


def _unbound() -> bool:
    raise RuntimeError("trigger not bound: the pipette has no state machine")


class PipetteModel:
    """A pipette, its manipulator, calibration, goal, plan and correction (see module doc)."""

    state: PipetteState

    # -- triggers, bound by the machine ------------------------------------------------
    def calibrate(self) -> bool: return _unbound()  # fmt: skip

    def calibrated(self) -> bool: return _unbound()  # fmt: skip

    def calibration_failed(self) -> bool: return _unbound()  # fmt: skip

    def confirm_calibration(self) -> bool: return _unbound()  # fmt: skip

    def start_move(self) -> bool: return _unbound()  # fmt: skip

    def arrive(self) -> bool: return _unbound()  # fmt: skip

    def reach_checkpoint(self) -> bool: return _unbound()  # fmt: skip

    def advance(self) -> bool: return _unbound()  # fmt: skip

    def continue_travel(self) -> bool: return _unbound()  # fmt: skip

    def need_correction(self) -> bool: return _unbound()  # fmt: skip

    def reach_target(self) -> bool: return _unbound()  # fmt: skip

    def pause(self) -> bool: return _unbound()  # fmt: skip

    def replan(self) -> bool: return _unbound()  # fmt: skip

    def take_over(self) -> bool: return _unbound()  # fmt: skip

    def release(self) -> bool: return _unbound()  # fmt: skip

    def fail(self) -> bool: return _unbound()  # fmt: skip

    def clear_fault(self) -> bool: return _unbound()  # fmt: skip

    def stop(self) -> bool: return _unbound()  # fmt: skip

    def rearm(self) -> bool: return _unbound()  # fmt: skip

    def __init__(
        self,
        config: PipetteConfig,
        manipulator: Manipulator,
        tracker: TipTracker,
        safety: SafetyConfig,
        log: EventLog,
        correction_settings: CorrectionSettings | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.geometry = PipetteGeometry.from_config(config)
        self.manipulator = manipulator
        self.tracker = tracker
        self.safety = safety
        self.log = log
        self.correction_settings = correction_settings or CorrectionSettings()
        self.calibration: Calibration | None = None
        self.pending_calibration: Calibration | None = None
        self.history = CalibrationHistory()
        self.target_um: Vector | None = None
        self.goal: Goal | None = None
        self.plan: PipettePlan | None = None
        self.next_waypoint = 0
        self.started_steps: set[int] = set()
        self.done_steps: set[int] = set()
        self.handle: MoveHandle | None = None
        self.correction: CorrectionRun | None = None
        self.fault_text = ""
        self.pause_reason = ""
        self.waiting_for = ""
        self.last_correction_um: float | None = None
        self.corrections = 0
        self.final_error_um: float | None = None
        self.speed_um_s = 0.0
        self._reading: Vector | None = None
        self._full_reading: tuple[float, ...] | None = None
        self._off_line_frames = 0
        self._resume_waypoint = False
        self.verify_failed = False
        """Measuring it where it stood failed; plan to measure it elsewhere."""

    # -- knowledge ---------------------------------------------------------------------
    def is_calibrated(self, _event: object = None) -> bool:
        """Whether a calibration is installed (also the machine's condition; it passes an event)."""
        return self.calibration is not None

    def refresh_reading(self) -> Vector:
        """Read the manipulator (once per tick); raises ManipulatorError if it does not answer."""
        self._full_reading = tuple(self.manipulator.position_um())
        self._reading = np.asarray(self._full_reading[:3], dtype=np.float64)
        return self._reading

    @property
    def full_reading_um(self) -> tuple[float, ...] | None:
        """The last reading of every axis (a 4th too; device µm), None before the first."""
        return self._full_reading

    @property
    def reading_um(self) -> Vector:
        return self._reading if self._reading is not None else self.refresh_reading()

    def predicted_tip_um(self) -> Vector:
        if self.calibration is None:
            raise RuntimeError(f"{self.name} is not calibrated")
        return self.calibration.transform.to_sample(self.reading_um)

    def expected_tip_um(self) -> Vector:
        return self.predicted_tip_um() + self.tracker.offset_um(self.name)

    def set_tip_offset(self, offset_um: Vector, sigma_um: float) -> None:
        self.tracker.set_offset(self.name, offset_um, sigma_um)
        self.verify_failed = False

    def device_target_um(self, sample_um: Vector) -> Vector:
        if self.calibration is None:
            raise RuntimeError(f"{self.name} is not calibrated")
        return self.calibration.transform.to_manipulator(
            sample_um - self.tracker.offset_um(self.name)
        )

    def device_position_um(self) -> Vector:
        return self.reading_um

    def device_step_to_sample_um(self, step_um: Vector) -> Vector:
        if self.calibration is None:
            raise RuntimeError(f"{self.name} is not calibrated")
        return self.calibration.transform.vector_to_sample(step_um)

    def sample_step_to_device_um(self, step_um: Vector) -> Vector:
        if self.calibration is None:
            raise RuntimeError(f"{self.name} is not calibrated")
        return self.calibration.transform.vector_to_manipulator(step_um)

    def search_radius_um(self) -> float:
        return self.tracker.gate_um(self.name)

    @property
    def axis(self) -> Vector:
        return self.geometry.axis

    def uncertainty_um(self) -> float:
        """How far the true tip may be from the estimate (3 standard deviations, µm)."""
        return 3.0 * self.tracker.sigma_um(self.name)

    def step_of(self, waypoint_index: int) -> int:
        """Index of the plan phase a waypoint belongs to."""
        assert self.plan is not None
        phases = self.plan.phases()
        return phases.index(self.plan.waypoints[waypoint_index].phase)

    # -- motion ------------------------------------------------------------------------
    def move_device(self, device_um: Vector, speed_um_s: float) -> MoveHandle:
        self.speed_um_s = speed_um_s
        self.handle = self.manipulator.move_to([float(v) for v in device_um[:3]], speed_um_s)
        return self.handle

    def halt(self) -> None:
        """Stop the manipulator and forget the current move and correction."""
        self.handle = None
        self.correction = None
        self.speed_um_s = 0.0
        try:
            self.manipulator.stop()
        except ManipulatorError as exc:
            self.fault_text = f"stop failed: {exc}"

    def set_plan(self, plan: PipettePlan | None) -> None:
        self.plan = plan
        self.next_waypoint = 0
        self.started_steps = set()
        self.done_steps = set()
        self.correction = None
        self.waiting_for = ""
        self._resume_waypoint = False

    @property
    def plan_done(self) -> bool:
        return self.plan is not None and len(self.done_steps) == len(self.plan.phases())

    def to_fault(self, reason: str) -> None:
        self.fault_text = reason
        self.log.record(EventKind.FAULT, self.name, "pipette fault", reason=reason)
        self.halt()
        if self.state is not PipetteState.FAULT and self.state is not PipetteState.STOPPED:
            self.fail()

    def to_pause(self, reason: str) -> None:
        self.pause_reason = reason
        self.log.record(EventKind.DECISION, self.name, "paused for the operator", reason=reason)
        self.halt()
        self.pause()
