"""One pipette under automation: the execution of its plan.

``PipetteUnit`` is the model of the per-pipette machine (``states.PIPETTE_TRANSITIONS``; the
triggers are declared in ``PipetteModel`` and bound by ``transitions`` with
``model_override=True``). It executes its plan one waypoint at a time, never blocking: ``tick``
is called for every frame (or timer tick) and starts moves, notices when they end, runs
correction at checkpoints, and watches the tip against the planned line while it advances.
The coordinator decides when each step of the plan may start and who holds the focus.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from patchpilot.control.correction import (
    ActionKind,
    CorrectionAction,
    CorrectionRun,
    Sighting,
    line_deviation_um,
)
from patchpilot.control.pipette_model import Goal, GoalKind, PipetteModel
from patchpilot.control.plans import Phase
from patchpilot.control.states import PipetteState
from patchpilot.control.tracking import TipMatch
from patchpilot.events import EventKind
from patchpilot.hardware import ManipulatorError, MoveStatus

__all__ = ["Goal", "GoalKind", "PipetteUnit"]

Vector = NDArray[np.float64]

_DEVIATION_FRAMES = 3  # frames off the line in a row before a mid-move correction


class PipetteUnit(PipetteModel):
    """A pipette executing its plan (see the module docstring)."""

    # -- execution ---------------------------------------------------------------------
    def tick(
        self,
        sighting: Sighting | None,
        has_focus: bool,
        may_start: Callable[[int], str],
        set_focus: Callable[[float], None],
    ) -> None:
        """Advance the plan by what happened since the last tick (never blocks).

        Parameters
        ----------
        sighting
            The newest frame and this pipette's tip in it (None on a timer tick).
        has_focus
            Whether this pipette holds the focus (only then are frames used to measure it).
        may_start
            ``may_start(step)`` returns "" when that plan step may start, else what it waits for.
        set_focus
            Ask for later frames at a focus (sample z, µm).
        """
        automatic = (
            PipetteState.READY,
            PipetteState.AT_TARGET,
            PipetteState.MOVING,
            PipetteState.APPROACHING,
            PipetteState.CORRECTING,
        )
        if self.plan is None or self.state not in automatic:
            return
        if self.correction is not None:
            self._tick_correction(sighting, has_focus, set_focus)
            return
        if self.handle is not None:
            if not self.handle.is_done:
                if self.state is PipetteState.APPROACHING and sighting is not None and has_focus:
                    self._watch_line(sighting.match, set_focus)
                return
            self._waypoint_reached()
            if self.correction is not None or self.state is PipetteState.FAULT:
                return
        self._start_next(may_start)

    def _start_next(self, may_start: Callable[[int], str]) -> None:
        assert self.plan is not None
        if self.next_waypoint >= len(self.plan.waypoints):
            return
        step = self.step_of(self.next_waypoint)
        if step not in self.started_steps:
            self.waiting_for = may_start(step)
            if self.waiting_for:
                return
            self.started_steps.add(step)
        waypoint = self.plan.waypoints[self.next_waypoint]
        self._enter_motion_state(waypoint.phase)
        try:
            device = self.device_target_um(waypoint.position_um)
            speed = waypoint.speed_um_s
            if self._resume_waypoint and waypoint.in_tissue:
                speed = self.geometry.slow_speed_um_s
            self.move_device(device, speed)
        except (ManipulatorError, ValueError) as exc:
            self.to_fault(f"cannot move to {waypoint.reason.value}: {exc}")
            return
        self._resume_waypoint = False
        self._off_line_frames = 0

    def _enter_motion_state(self, phase: Phase) -> None:
        state = self.state
        if state in (PipetteState.READY, PipetteState.AT_TARGET):
            self.start_move()
        if phase is Phase.INSERT and self.state is not PipetteState.APPROACHING:
            self.advance()
        elif phase is not Phase.INSERT and self.state is PipetteState.CORRECTING:
            self.continue_travel()

    def _waypoint_reached(self) -> None:
        assert self.plan is not None and self.handle is not None
        handle, self.handle = self.handle, None
        self.speed_um_s = 0.0
        if handle.status is not MoveStatus.FINISHED:
            self.to_fault(f"move ended {handle.status.value}: {handle.reason}")
            return
        index = self.next_waypoint
        waypoint = self.plan.waypoints[index]
        self.next_waypoint += 1
        last = self.next_waypoint >= len(self.plan.waypoints)
        is_approach = self.goal is not None and self.goal.kind is GoalKind.APPROACH
        if waypoint.checkpoint or (last and is_approach):
            self._begin_correction(
                waypoint.position_um, waypoint.phase is Phase.VERIFY, final=last and is_approach
            )
            self.reach_checkpoint()
            return
        self._maybe_finish_step(index)

    def _maybe_finish_step(self, index: int) -> None:
        """Mark the step done when ``index`` was its last waypoint."""
        assert self.plan is not None
        step = self.step_of(index)
        following = self.next_waypoint
        if following >= len(self.plan.waypoints) or self.step_of(following) != step:
            self.done_steps.add(step)
            self.log.record(EventKind.DECISION, self.name, "plan step done", step=step)
        if following >= len(self.plan.waypoints) and self.state is PipetteState.MOVING:
            self.arrive()

    def _begin_correction(
        self, goal_um: Vector, measure_only: bool = False, final: bool = False
    ) -> None:
        settings = self.correction_settings
        # Look for the tip in focus at least as far as it may be off.
        search_um = max(settings.search_half_range_um, self.uncertainty_um() + 10.0)
        self.correction = CorrectionRun(
            self.name,
            np.asarray(goal_um, dtype=np.float64),
            self.safety.correction_tolerance_um,
            self.safety.max_single_correction_um,
            self.safety.tip_lost_after_frames,
            dataclasses.replace(settings, search_half_range_um=search_um),
            measure_only,
            confirm_identity=not self.tracker.is_confident(self.name),
            surface_z_um=self.safety.tissue_surface_z_um,
            final=final,
        )

    def _tick_correction(
        self, sighting: Sighting | None, has_focus: bool, set_focus: Callable[[float], None]
    ) -> None:
        run = self.correction
        assert run is not None
        if self.handle is not None:
            if not self.handle.is_done:
                return
            finished = self.handle.status is MoveStatus.FINISHED
            self.handle = None
            self.speed_um_s = 0.0
            self._act(run.move_ended(finished), set_focus)
            return
        if sighting is None or not has_focus:
            return
        self._act(run.on_frame(sighting, self), set_focus)

    def _act(self, action: CorrectionAction, set_focus: Callable[[float], None]) -> None:
        if action.kind is ActionKind.FOCUS and action.focus_um is not None:
            set_focus(action.focus_um)
        elif action.kind is ActionKind.MOVE and action.device_target_um is not None:
            in_tissue = float(self.expected_tip_um()[2]) < self.safety.tissue_surface_z_um
            speed = self.geometry.slow_speed_um_s if in_tissue else 100.0
            self.corrections += 1
            self.last_correction_um = action.correction_um
            self.log.record(
                EventKind.DECISION,
                self.name,
                "correction",
                error_um=action.error_um,
                correction_um=action.correction_um,
                device_target_um=action.device_target_um,
            )
            try:
                self.move_device(action.device_target_um, min(speed, self.geometry.fast_speed_um_s))
            except (ManipulatorError, ValueError) as exc:
                self.to_fault(f"correction move refused: {exc}")
        elif action.kind is ActionKind.CONVERGED:
            self._converged(action.error_um or 0.0)
        elif action.kind is ActionKind.FAILED:
            self.correction = None
            assert self.plan is not None
            finished = self.next_waypoint - 1
            if self.plan.waypoints[finished].phase is Phase.VERIFY:
                # Not found where it was thought to be: plan to measure it further inside
                # the field instead (the coordinator re-plans); not yet a reason to stop.
                self.verify_failed = True
                self.log.record(
                    EventKind.DECISION, self.name, "not found in place", reason=action.reason
                )
                self.done_steps.add(self.step_of(finished))
                self.replan()
                return
            self.to_pause(action.reason)

    def _converged(self, error_um: float) -> None:
        assert self.plan is not None
        self.correction = None
        self.log.record(EventKind.DECISION, self.name, "tip on the plan", error_um=error_um)
        if self._resume_waypoint:
            return  # a mid-move correction: re-command the interrupted waypoint next tick
        finished = self.next_waypoint - 1
        if self.plan.waypoints[finished].phase is Phase.VERIFY:
            self.done_steps.add(self.step_of(finished))
            self.replan()  # measured: ready for a plan made with what is now known
            return
        if self.next_waypoint >= len(self.plan.waypoints):
            self.final_error_um = error_um
            self.done_steps.add(self.step_of(finished))
            self.reach_target()
            return
        self._maybe_finish_step(finished)

    def _watch_line(self, match: TipMatch | None, set_focus: Callable[[float], None]) -> None:
        """While advancing: follow the tip with the focus; correct if it leaves the line."""
        assert self.plan is not None
        expected = self.expected_tip_um()
        set_focus(float(expected[2]))
        if match is None or match.ambiguous:
            return
        start = self.plan.segments()[self.next_waypoint][0]
        end = self.plan.waypoints[self.next_waypoint].position_um
        threshold = max(2.0 * self.safety.correction_tolerance_um, 2.0)
        if line_deviation_um(expected, start, end) <= threshold:
            self._off_line_frames = 0
            return
        self._off_line_frames += 1
        if self._off_line_frames < _DEVIATION_FRAMES:
            return
        direction = (end - start) / max(float(np.linalg.norm(end - start)), 1e-9)
        along = float(np.clip((expected - start) @ direction, 0.0, np.linalg.norm(end - start)))
        self.handle = None
        try:
            self.manipulator.stop()
        except ManipulatorError as exc:
            self.to_fault(f"stop failed: {exc}")
            return
        self.speed_um_s = 0.0
        self._resume_waypoint = True
        self._begin_correction(start + direction * along)
        self.need_correction()
