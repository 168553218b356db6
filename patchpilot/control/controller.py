"""The public face of closed-loop control: ``Controller``.

Everything the experiment wiring, the panel and the CLI need::

    controller = Controller(config, manipulators, imaging, log, clock)
    controller.calibrate_all()                 # blocking; per-pipette outcomes
    controller.set_target("P1", (10.0, -5.0, -60.0))
    controller.start_approach()
    ...                                        # every frame:
    controller.on_frame(frame, detections)     # tracking, correction, sequencing
    controller.status()["P1"].state            # "approaching", ...

Operator actions: ``pause_all``, ``resume_all``, ``stop_all``, ``rearm``, ``take_over``,
``jog``, ``jog_along_axis``, ``release``, ``retract``, ``home``, ``clear_fault``,
``confirm_calibration``, ``set_nogo_zones``. Every
call is validated before anything moves; bad input raises ``ValueError`` (or a subclass:
``PlanError``, ``MoveRefused``) naming what was wrong. ``signals`` (psygnal) tell the panel
about transitions, faults and plans. All public methods are thread-safe (one lock), so frames
may arrive from an acquisition thread while the panel calls from another; with ``SimClock``
one thread can drive everything (``on_frame`` after each simulated frame).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from patchpilot.clock import Clock
from patchpilot.config import NoGoZone, RigConfig
from patchpilot.control._protocol import Imaging
from patchpilot.control.calibration import Calibration
from patchpilot.control.calibration_session import STOPPED, CalibrationOutcome, calibrate_unit
from patchpilot.control.coordinator import Coordinator
from patchpilot.control.correction import CorrectionSettings
from patchpilot.control.geometry import ManipulatorTransform, as_point
from patchpilot.control.manual import check_axial_jog, check_jog
from patchpilot.control.pipette import Goal, GoalKind, PipetteUnit
from patchpilot.control.planning import PlanError
from patchpilot.control.states import CoordinatorState, PipetteState
from patchpilot.control.status import ControllerSignals, PipetteStatus, pipette_status
from patchpilot.control.stop_signal import StopSignal
from patchpilot.control.tracking import TipTracker, TrackerSettings
from patchpilot.control.zones import checked_zones, recheck_plans
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware import Manipulator, MoveHandle
from patchpilot.types import Frame, TipDetection

__all__ = ["Controller", "ControllerSignals", "PipetteStatus"]


class Controller:
    """Closed-loop control of every pipette on a rig (see the module docstring).

    Parameters
    ----------
    config
        The rig: pipettes, safety limits, microscope.
    manipulators
        One per pipette, by pipette name.
    imaging
        Snapshots at a chosen focus, and the focus for live frames.
    log
        Every transition, decision, command and fault is recorded here.
    clock
        Real or simulated time.

    Raises
    ------
    ValueError
        A pipette of the config has no manipulator, or a manipulator no pipette.
    """

    def __init__(
        self,
        config: RigConfig,
        manipulators: Mapping[str, Manipulator],
        imaging: Imaging,
        log: EventLog,
        clock: Clock,
        *,
        tracker_settings: TrackerSettings | None = None,
        correction_settings: CorrectionSettings | None = None,
    ) -> None:
        names = [p.name for p in config.pipettes]
        if sorted(names) != sorted(manipulators):
            raise ValueError(
                f"pipettes {sorted(names)} and manipulators {sorted(manipulators)} differ"
            )
        self.config = config
        self.imaging = imaging
        self.log = log
        self.clock = clock
        self.signals = ControllerSignals()
        self._lock = threading.RLock()
        self._stop = StopSignal()  # ends a blocking calibration at once on STOP ALL
        settings = tracker_settings or TrackerSettings(
            lost_after_frames=config.safety.tip_lost_after_frames
        )
        self.tracker = TipTracker(names, settings)
        self.units = {
            p.name: PipetteUnit(
                p, manipulators[p.name], self.tracker, config.safety, log, correction_settings
            )
            for p in config.pipettes
        }
        self.coordinator = Coordinator(
            config, self.units, self.tracker, imaging, log, clock, self._on_transition
        )

    def _on_transition(self, who: str, trigger: str, before: str, after: str) -> None:
        self.signals.transition.emit(who, trigger, before, after)
        unit = self.units.get(who)
        if unit is not None and after == PipetteState.FAULT.value:
            self.signals.fault.emit(who, unit.fault_text)

    def _unit(self, name: str) -> PipetteUnit:
        try:
            return self.units[name]
        except KeyError:
            raise ValueError(f"no pipette {name!r}; known: {', '.join(self.units)}") from None

    @property
    def state(self) -> CoordinatorState:
        return self.coordinator.state

    # -- calibration ---------------------------------------------------------------------
    def calibrate(self, name: str) -> CalibrationOutcome:
        """Calibrate one pipette now (blocking; the others stay where they are)."""
        return self.calibrate_all([name])[name]

    def calibrate_all(self, names: Sequence[str] | None = None) -> dict[str, CalibrationOutcome]:
        """Calibrate pipettes one at a time, the others parked (blocking).

        Returns each pipette's outcome: accepted, needs confirmation, refused, failed or
        stopped, with why. STOP ALL ends it at once: the pipette being calibrated stays where
        it stopped and the rest are not calibrated (verdict ``stopped``).

        Raises
        ------
        ValueError
            An unknown pipette, or the coordinator is not idle (e.g. stopped: re-arm first).
        """
        wanted = list(names) if names is not None else list(self.units)
        units = [self._unit(n) for n in wanted]
        with self._lock:
            if self.coordinator.state is not CoordinatorState.IDLE:
                raise ValueError(
                    f"the coordinator is {self.coordinator.state.value}; calibration needs it "
                    "idle (finish, or stop and re-arm first)"
                )
            self.coordinator.begin_calibration()
        outcomes: dict[str, CalibrationOutcome] = {}
        try:
            for unit in units:
                with self._lock:
                    if self._stop.is_set() or unit.state is PipetteState.STOPPED:
                        outcomes[unit.name] = CalibrationOutcome(
                            unit.name, STOPPED, f"{unit.name}: not calibrated (STOP ALL)", None
                        )
                        continue
                    unit.calibrate()
                outcome = calibrate_unit(unit, self.imaging, self.config, self.log, stop=self._stop)
                with self._lock:
                    if unit.state is not PipetteState.CALIBRATING:
                        pass  # stopped meanwhile: the stop decided its state
                    elif outcome.accepted:
                        unit.calibrated()
                    else:
                        unit.calibration_failed()
                outcomes[unit.name] = outcome
                residual = outcome.calibration.rms_residual_um if outcome.calibration else math.nan
                self.signals.calibrated.emit(unit.name, outcome.verdict, residual)
        finally:
            with self._lock:
                state: CoordinatorState = self.coordinator.state  # a stop may have changed it
                if state is CoordinatorState.CALIBRATING:
                    self.coordinator.end_calibration()
        return outcomes

    def confirm_calibration(self, name: str) -> None:
        """Accept a calibration that was waiting for the operator (the 30 µm rule)."""
        with self._lock:
            unit = self._unit(name)
            if unit.pending_calibration is None:
                raise ValueError(f"{name} has no calibration waiting for confirmation")
            self._install(
                unit,
                unit.pending_calibration,
                3.0 * max(0.5, unit.pending_calibration.rms_residual_um),
            )
            unit.pending_calibration = None
            self.log.record(EventKind.OPERATOR, name, "calibration confirmed")
            unit.confirm_calibration()

    def set_calibration(
        self, name: str, calibration: Calibration | ManipulatorTransform, uncertainty_um: float
    ) -> None:
        """Use a known calibration (an earlier session's) with how far off it may be (µm).

        The tip is then measured and corrected at each checkpoint before it enters the tissue.
        """
        if not (math.isfinite(uncertainty_um) and uncertainty_um > 0):
            raise ValueError(f"uncertainty {uncertainty_um} µm must be positive and finite")
        with self._lock:
            unit = self._unit(name)
            if isinstance(calibration, ManipulatorTransform):
                points = np.zeros((0, 3))
                calibration = Calibration(name, calibration, points, points, np.zeros(1))
            self._install(unit, calibration, uncertainty_um)
            self.log.record(
                EventKind.CALIBRATION, name, "calibration loaded", uncertainty_um=uncertainty_um
            )
            if unit.state is PipetteState.IDLE:
                unit.confirm_calibration()

    def _install(self, unit: PipetteUnit, calibration: Calibration, uncertainty_um: float) -> None:
        unit.calibration = calibration
        unit.history.add(calibration)
        self.tracker.reset(unit.name, uncertainty_um / 3.0)

    # -- targets and automation ------------------------------------------------------------
    def set_target(self, name: str, target_um: Sequence[float]) -> str:
        """Set (and check) a pipette's target; returns the plan it would follow now.

        Raises
        ------
        PlanError
            Non-finite, outside the field of view, unreachable within the soft limits, or
            through a no-go zone.
        """
        with self._lock:
            unit = self._unit(name)
            try:
                target = as_point(target_um, f"{name} target")
            except ValueError as exc:
                raise PlanError(str(exc)) from None
            previous = unit.goal
            unit.goal = Goal(GoalKind.APPROACH, target)
            try:
                plan = self.coordinator.plan_for(unit, verify=False)
            except PlanError:
                unit.goal = previous
                raise
            unit.target_um = target
            if unit.state is PipetteState.AT_TARGET:
                unit.final_error_um = None
            self.log.record(EventKind.OPERATOR, name, "target set", target_um=target)
            return plan.describe() if plan is not None else ""

    def start_approach(self) -> None:
        """Plan, sequence and start every pipette that has a target (not yet reached)."""
        with self._lock:
            for unit in self.units.values():
                if unit.target_um is not None and unit.state is not PipetteState.AT_TARGET:
                    unit.goal = Goal(GoalKind.APPROACH, unit.target_um)
            self._replan_and_run("approach started")

    def _replan_and_run(self, why: str) -> None:
        schedule = self.coordinator.replan()
        self.log.record(EventKind.OPERATOR, "coordinator", why)
        if self.coordinator.state is CoordinatorState.IDLE:
            self.coordinator.start()
        self.signals.plans.emit(self.plan_text())
        del schedule

    def pause_all(self) -> None:
        with self._lock:
            self.log.record(EventKind.OPERATOR, "coordinator", "pause all")
            self.coordinator.pause_everything("paused by the operator")

    def resume_all(self) -> None:
        """Re-plan from where everything is and continue (paused pipettes too)."""
        with self._lock:
            for unit in self.units.values():
                if unit.state is PipetteState.PAUSED:
                    unit.pause_reason = ""
                    unit.replan()
            if self.coordinator.state is CoordinatorState.PAUSED:
                self.coordinator.resume_all()
            self._replan_and_run("resume all")

    def stop_all(self) -> dict[str, str | None]:
        """Stop every manipulator at once (from any state); returns each stop's error or None.

        A calibration in progress ends at once and nothing moves until ``rearm``.
        """
        self._stop.set()  # first: a calibration thread sends no further move
        with self._lock:
            return self.coordinator.stop_everything()

    def rearm(self) -> None:
        """After a stop: back to ready (calibrated) or idle; goals are dropped."""
        with self._lock:
            self._stop.clear()
            for unit in self.units.values():
                unit.goal = None
                unit.set_plan(None)
                if unit.state is PipetteState.STOPPED:
                    unit.rearm()
            self.coordinator.rearm()

    # -- manual control --------------------------------------------------------------------
    def take_over(self, name: str) -> None:
        """Freeze automation for one pipette; the others continue where their paths stay clear."""
        with self._lock:
            unit = self._unit(name)
            unit.halt()
            unit.take_over()
            self.log.record(EventKind.OPERATOR, name, "manual control")
            self.coordinator.obstacles_changed()

    def release(self, name: str) -> None:
        """Give a manual pipette back to automation; everything is re-planned."""
        with self._lock:
            unit = self._unit(name)
            unit.release()
            self.log.record(EventKind.OPERATOR, name, "released to automation")
            if self.coordinator.state is CoordinatorState.RUNNING:
                self._replan_and_run(f"re-plan after releasing {name}")
            else:
                self.coordinator.obstacles_changed()

    def jog(self, name: str, axis: int, step_um: float, speed_um_s: float) -> MoveHandle:
        """Move one axis (0, 1, 2) of a manual pipette by ``step_um`` (device axes, µm).

        Raises
        ------
        ValueError
            Not under manual control, a bad axis, step or speed (see ``manual.check_jog``).
        MoveRefused
            Outside the soft limits, sideways inside the tissue, or too close to another
            pipette. Nothing moves in any of these cases.
        """
        with self._lock:
            unit = self._unit(name)
            target = check_jog(
                unit, self.units.values(), axis, step_um, speed_um_s, self.config.safety
            )
            self.log.record(
                EventKind.OPERATOR, name, "jog", axis=axis, step_um=step_um, speed_um_s=speed_um_s
            )
            handle = unit.manipulator.move_to([float(v) for v in target], speed_um_s)
            self.coordinator.obstacles_changed()
            return handle

    def jog_along_axis(self, name: str, step_um: float, speed_um_s: float) -> MoveHandle:
        """Move a manual pipette along its own axis by ``step_um`` (µm; positive advances).

        The only direction allowed inside the tissue. Uses the manipulator's 4th axis where
        it has one with soft limits (a uMp-4's "D" axis), else the three axes through the
        calibration.

        Raises
        ------
        ValueError
            Not under manual control, a bad step or speed, or a 3-axis pipette that is not
            calibrated (see ``manual.check_axial_jog``).
        MoveRefused
            Outside the soft limits, into a no-go zone or too close to another pipette.
            Nothing moves in any of these cases.
        """
        with self._lock:
            unit = self._unit(name)
            target = check_axial_jog(
                unit, self.units.values(), step_um, speed_um_s, self.config.safety
            )
            self.log.record(
                EventKind.OPERATOR,
                name,
                "jog along the axis",
                step_um=step_um,
                speed_um_s=speed_um_s,
            )
            handle = unit.manipulator.move_to([float(v) for v in target], speed_um_s)
            self.coordinator.obstacles_changed()
            return handle

    def set_nogo_zones(self, zones: Iterable[NoGoZone | Mapping[str, object]]) -> dict[str, str]:
        """Replace the no-go zones (sample frame, µm): every plan is re-checked against them.

        A pipette under way whose path now passes within the no-go margin of a zone pauses
        with the reason; one whose plan has not started drops its target (the reason is in
        its status). Later targets are planned around the zones. Returns the refusals.

        Raises
        ------
        ValueError
            A zone that is not a valid cylinder or capsule (nothing is changed).
        """
        installed = checked_zones(zones)
        with self._lock:
            safety = self.config.safety.model_copy(update={"nogo_zones": installed})
            self.config = self.config.model_copy(update={"safety": safety})
            self.coordinator.config = self.config
            for unit in self.units.values():
                unit.safety = safety
            self.log.record(
                EventKind.OPERATOR,
                "coordinator",
                "no-go zones set",
                zones=[zone.model_dump() for zone in installed],
            )
            refused = recheck_plans(list(self.units.values()), safety, self.log)
            self.signals.plans.emit(self.plan_text())
            return refused

    def retract(self, name: str) -> None:
        """Back a pipette out along its axis to the safe height (sequenced like any plan)."""
        self._operator_goal(name, Goal(GoalKind.RETRACT))

    def home(self, name: str) -> None:
        """Take a pipette to its configured home (above the tissue)."""
        unit = self._unit(name)
        if unit.config.home_um is None:
            raise ValueError(f"{name} has no home_um configured")
        if unit.calibration is None:
            raise ValueError(f"{name} is not calibrated")
        home = unit.calibration.transform.to_sample(unit.config.home_um[:3])
        self._operator_goal(name, Goal(GoalKind.HOME, home + self.tracker.offset_um(name)))

    def _operator_goal(self, name: str, goal: Goal) -> None:
        with self._lock:
            unit = self._unit(name)
            if unit.state not in (PipetteState.READY, PipetteState.AT_TARGET, PipetteState.PAUSED):
                raise ValueError(
                    f"{name} is {unit.state.value}; it must be ready, at target or paused"
                )
            previous = unit.goal
            unit.goal = goal
            if unit.state is PipetteState.PAUSED:
                unit.replan()
            try:
                self._replan_and_run(f"{goal.kind.value} {name}")
            except PlanError:
                unit.goal = previous
                raise

    def clear_fault(self, name: str) -> None:
        with self._lock:
            unit = self._unit(name)
            unit.fault_text = ""
            unit.clear_fault()
            self.log.record(EventKind.OPERATOR, name, "fault cleared")
            self.coordinator.obstacles_changed()

    # -- the loop --------------------------------------------------------------------------
    def on_frame(self, frame: Frame, detections: Sequence[TipDetection]) -> None:
        """Feed one localised frame (tracking, correction, sequencing).

        Raises
        ------
        ValueError
            A frame that is not a 2-D image, or with a non-finite focus or pixel size.
        """
        image = getattr(frame, "image", None)
        if image is None or getattr(image, "ndim", 0) != 2:
            raise ValueError(f"frame image must be 2-D, got {getattr(image, 'shape', None)}")
        if not (math.isfinite(frame.focus_um) and frame.pixel_size_um > 0):
            raise ValueError(
                f"frame focus {frame.focus_um} or pixel size {frame.pixel_size_um} invalid"
            )
        with self._lock:
            self.coordinator.step(frame, list(detections))

    def tick(self) -> None:
        """Advance without a frame (timeouts, stale frames, sequencing)."""
        with self._lock:
            self.coordinator.step(None, [])

    def start_background(self, period_s: float = 0.05) -> Callable[[], None]:
        """Call ``tick`` every ``period_s`` on a thread (real time); returns a stop function."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                self.tick()
                stop.wait(period_s)

        thread = threading.Thread(target=run, name="patchpilot-control", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(timeout=5.0)

        return halt

    # -- reporting -------------------------------------------------------------------------
    def status(self) -> dict[str, PipetteStatus]:
        with self._lock:
            return {name: pipette_status(unit) for name, unit in self.units.items()}

    def plan_text(self) -> str:
        with self._lock:
            plans = [u.plan.describe() for u in self.units.values() if u.plan is not None]
            schedule = self.coordinator.schedule
            order = " -> ".join(str(s) for s in schedule.order) if schedule else "(none)"
            return "\n".join([*plans, f"order: {order}"])

    def draw_plans(self, path: str | Path) -> Path:
        """Draw every current plan (top and side views) to a PNG."""
        from patchpilot.control.drawing import draw_plans

        with self._lock:
            plans = {n: u.plan for n, u in self.units.items() if u.plan is not None}
            geometries = {n: u.geometry for n, u in self.units.items()}
            return draw_plans(plans, geometries, self.config.safety, self.coordinator.view, path)
