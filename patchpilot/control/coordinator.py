"""The coordinator: every pipette's machine, sequencing, the focus, pause, stop and overrides.

``Coordinator.step(frame, detections)`` is the whole control loop for one frame (or, with no
frame, one timer tick): read the manipulators, track the tips, pause pipettes whose frames
have gone stale, hand the focus to the pipette that needs it, and let each pipette advance its
plan as far as the schedule allows. It never blocks, so it runs the same way from a real-time
thread (``RealClock``) and from a single-threaded stepped simulation (``SimClock``).

Plans are made for all pipettes at once (``replan``) from where they are, and sequenced by
``scheduling.schedule_moves``. A pipette under manual control or in fault is an obstacle: steps
of other pipettes that would pass too close to it wait (or, if under way, are paused).
The caller holds one lock around every call (``Controller`` does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from transitions import EventData, Machine

from patchpilot.clock import Clock
from patchpilot.config import RigConfig
from patchpilot.control._protocol import Imaging
from patchpilot.control.correction import Sighting
from patchpilot.control.geometry import FieldOfView
from patchpilot.control.pipette import GoalKind, PipetteUnit
from patchpilot.control.planning import (
    PlanError,
)
from patchpilot.control.replanning import Replanning
from patchpilot.control.scheduling import Schedule, Step
from patchpilot.control.states import (
    COORDINATOR_TRANSITIONS,
    PIPETTE_TRANSITIONS,
    CoordinatorState,
    PipetteState,
)
from patchpilot.control.tracking import Prediction, TipMatch, TipTracker
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware import ManipulatorError, stop_all
from patchpilot.types import Frame, TipDetection

__all__ = ["Coordinator"]


_MOVING = (PipetteState.MOVING, PipetteState.APPROACHING, PipetteState.CORRECTING)
_WATCHED = (PipetteState.APPROACHING, PipetteState.CORRECTING)


class _Machine(Machine):
    """A ``Machine`` that binds declared triggers quietly (``model_override=True`` logs a
    warning for every convenience method the models do not declare)."""

    def _checked_assignment(self, model: Any, name: str, func: Any) -> None:
        if (getattr(model, name, None) is None) ^ self.model_override:
            setattr(model, name, func)


class Coordinator(Replanning):
    """Machines, schedule and loop over all pipettes (see the module docstring)."""

    state: CoordinatorState

    def begin_calibration(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def end_calibration(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def start(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def finish(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def pause_all(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def resume_all(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def stop_all(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def rearm(self) -> bool: raise RuntimeError("unbound")  # fmt: skip

    def __init__(
        self,
        config: RigConfig,
        units: Mapping[str, PipetteUnit],
        tracker: TipTracker,
        imaging: Imaging,
        log: EventLog,
        clock: Clock,
        on_transition: Callable[[str, str, str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.units = dict(units)
        self.tracker = tracker
        self.imaging = imaging
        self.log = log
        self.clock = clock
        self.view = FieldOfView.from_microscope(config.microscope)
        self.schedule: Schedule | None = None
        self.blocked_by: dict[Step, str] = {}
        self.focus_holder: str | None = None
        self.last_frame_s: float | None = None
        self.frame_period_s = 1.0 / config.microscope.frame_rate_hz
        self.matches: dict[str, TipMatch] = {}
        self._obstacle_readings: dict[str, NDArray[np.float64]] = {}
        self._on_transition = on_transition
        self.pipette_machine = _Machine(
            model=None,
            states=PipetteState,
            transitions=PIPETTE_TRANSITIONS,
            initial=PipetteState.IDLE,
            auto_transitions=False,
            model_override=True,
            send_event=True,
            queued=True,
            after_state_change=self._record_transition,
        )
        for unit in self.units.values():
            self.pipette_machine.add_model(unit)
        self.machine = _Machine(
            model=self,
            states=CoordinatorState,
            transitions=COORDINATOR_TRANSITIONS,
            initial=CoordinatorState.IDLE,
            auto_transitions=False,
            model_override=True,
            send_event=True,
            queued=True,
            after_state_change=self._record_transition,
        )

    def _record_transition(self, event: EventData) -> None:
        model: Any = event.model
        source = "coordinator" if model is self else str(model.name)
        states: type[CoordinatorState] | type[PipetteState] = (
            CoordinatorState if model is self else PipetteState
        )
        transition = event.transition
        # transitions names states by their enum member names; log the readable values.
        before = states[str(getattr(transition, "source", ""))].value
        after = states[str(getattr(transition, "dest", ""))].value
        self.log.record(
            EventKind.TRANSITION,
            source,
            f"{before} -> {after}",
            trigger=event.event.name,
            source_state=before,
            dest_state=after,
        )
        if self._on_transition is not None:
            self._on_transition(source, event.event.name, before, after)

    # -- the loop ----------------------------------------------------------------------
    def step(self, frame: Frame | None, detections: list[TipDetection]) -> None:
        """One pass of the control loop (see the module docstring)."""
        now = self.clock.now()
        self._read_positions()
        if frame is not None:
            self.last_frame_s = now
            predictions = {
                name: Prediction(unit.predicted_tip_um(), unit.speed_um_s)
                for name, unit in self.units.items()
                if unit.is_calibrated()
            }
            self.matches = self.tracker.update(frame, detections, predictions, self.frame_period_s)
        else:
            self.matches = {}
        self._check_stale(now)
        self._check_obstacles_moved()
        self._assign_focus()
        for name, unit in self.units.items():
            sighting = (
                Sighting(frame, self.matches.get(name), self._unclaimed(frame, detections, name))
                if frame is not None
                else None
            )
            unit.tick(
                sighting,
                self.focus_holder == name,
                functools.partial(self._may_start, unit),
                self._set_focus,
            )
        self._check_finished()

    def _check_obstacles_moved(self) -> None:
        """Re-check the plans when a pipette out of automation has moved (a jog ended)."""
        moved = False
        for unit in self.units.values():
            if unit.state not in (PipetteState.MANUAL, PipetteState.FAULT):
                self._obstacle_readings.pop(unit.name, None)
                continue
            last = self._obstacle_readings.get(unit.name)
            if last is None or float(np.max(np.abs(unit.reading_um - last))) > 0.5:
                self._obstacle_readings[unit.name] = unit.reading_um.copy()
                moved = moved or last is not None
        if moved:
            self.obstacles_changed()

    def _unclaimed(
        self, frame: Frame, detections: list[TipDetection], viewer: str
    ) -> tuple[NDArray[np.float64], ...]:
        """Found tips (sample x, y) that no other, confidently tracked pipette has matched."""
        claimed = [
            match.seen_um[:2]
            for name, match in self.matches.items()
            if name != viewer and self.tracker.is_confident(name) and not match.ambiguous
        ]
        found = [
            np.asarray(frame.pixel_to_sample_um(d.x_px, d.y_px), dtype=np.float64)
            for d in detections
        ]
        return tuple(
            xy for xy in found if all(float(np.linalg.norm(xy - c)) > 2.0 for c in claimed)
        )

    def _read_positions(self) -> None:
        for unit in self.units.values():
            if unit.state is PipetteState.STOPPED:
                continue
            try:
                unit.refresh_reading()
            except ManipulatorError as exc:
                if unit.state is not PipetteState.FAULT:
                    unit.to_fault(f"position read failed: {exc}")
                    self.obstacles_changed()

    def _check_stale(self, now: float) -> None:
        timeout = self.config.safety.stale_frame_timeout_s
        if self.last_frame_s is None or now - self.last_frame_s <= timeout:
            return
        for unit in self.units.values():
            if unit.state in _WATCHED:
                unit.to_pause(f"frames stale: none for {now - self.last_frame_s:.2f} s")

    def _assign_focus(self) -> None:
        holder = self.units.get(self.focus_holder or "")
        correcting = [u for u in self.units.values() if u.correction is not None]
        if holder is not None and holder.correction is not None:
            return
        if correcting:
            self.focus_holder = correcting[0].name
            return
        if holder is not None and holder.state is PipetteState.APPROACHING:
            return
        approaching = [u for u in self.units.values() if u.state is PipetteState.APPROACHING]
        self.focus_holder = approaching[0].name if approaching else None

    def _set_focus(self, focus_um: float) -> None:
        if abs(self.imaging.focus_um - focus_um) < 0.05:
            return
        try:
            self.imaging.focus_um = focus_um
        except ValueError as exc:
            holder = self.units.get(self.focus_holder or "")
            if holder is not None and holder.state in _WATCHED:
                holder.to_pause(f"focus refused: {exc}")

    def _may_start(self, unit: PipetteUnit, step_index: int) -> str:
        if self.state is not CoordinatorState.RUNNING:
            return f"coordinator {self.state.value}"
        if self.schedule is None or unit.plan is None:
            return "no schedule"
        step = Step(unit.name, unit.plan.phases()[step_index], step_index)
        if step in self.blocked_by:
            return self.blocked_by[step]
        done = {
            Step(u.name, u.plan.phases()[i], i)
            for u in self.units.values()
            if u.plan is not None
            for i in u.done_steps
        }
        blockers = self.schedule.blockers(step, done)
        return ", ".join(f"waiting for {b}" for b in blockers)

    def _check_finished(self) -> None:
        if self.state is not CoordinatorState.RUNNING:
            return
        waiting_for_operator = (PipetteState.PAUSED, PipetteState.MANUAL, PipetteState.FAULT)
        busy = [
            u
            for u in self.units.values()
            if u.goal is not None
            and u.state not in waiting_for_operator
            and not (u.plan_done and u.state not in _MOVING)
        ]
        if busy:
            return
        unmet = [
            u
            for u in self.units.values()
            if u.goal is not None
            and u.goal.kind is GoalKind.APPROACH
            and u.state is PipetteState.READY
        ]
        if unmet:  # verified in place: now plan the real moves with what is known
            try:
                self.replan()
                return
            except PlanError as exc:
                self.log.record(EventKind.FAULT, "coordinator", "re-plan failed", reason=str(exc))
                for unit in unmet:
                    unit.goal = None
                    unit.waiting_for = f"not started: {exc}"
        for unit in self.units.values():
            if unit.goal is not None and unit.goal.kind is not GoalKind.APPROACH:
                unit.goal = None
        self.finish()

    # -- operator actions ----------------------------------------------------------------
    def pause_everything(self, reason: str) -> None:
        self.pause_all()
        for unit in self.units.values():
            if unit.state in _MOVING:
                unit.to_pause(reason)

    def stop_everything(self) -> dict[str, str | None]:
        """Stop every manipulator at once, then every machine; never raises."""
        results = stop_all(unit.manipulator for unit in self.units.values())
        for unit in self.units.values():
            unit.handle = None
            unit.correction = None
            unit.speed_um_s = 0.0
            unit.stop()
        self.stop_all()
        self.log.record(EventKind.OPERATOR, "coordinator", "stop all", results=results)
        return results
