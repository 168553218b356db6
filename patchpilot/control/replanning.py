"""Planning every pipette at once, and keeping plans clear of pipettes out of automation.

``Replanning`` is the planning half of the ``Coordinator``: a plan per pipette toward its goal
from where it is (or only a measurement where it stands, when its position is too uncertain),
sequenced by ``scheduling.schedule_moves``; and the re-check of every pending step against
pipettes under manual control or in fault.
"""

from __future__ import annotations

from transitions import Machine

from patchpilot.config import RigConfig
from patchpilot.control.geometry import FieldOfView
from patchpilot.control.pipette import GoalKind, PipetteUnit
from patchpilot.control.planning import (
    VIEW_MARGIN_UM,
    PipettePlan,
    PlanError,
    check_plan,
    plan_approach,
    plan_move_to,
    plan_retract,
    plan_verify,
)
from patchpilot.control.scheduling import MotionRequest, Schedule, Step, schedule_moves
from patchpilot.control.states import PipetteState
from patchpilot.events import EventKind, EventLog

__all__ = ["VERIFIED_MARGIN_UM", "VERIFY_ABOVE_UM", "Replanning"]

VERIFIED_MARGIN_UM = 3.0
"""Position uncertainty assumed after a checkpoint measured and corrected a tip (µm)."""
VERIFY_ABOVE_UM = 10.0
"""A pipette more uncertain than this (µm) is measured where it is before it is moved."""

_MOVING = (PipetteState.MOVING, PipetteState.APPROACHING, PipetteState.CORRECTING)


class Replanning:
    """Plans and obstacle checks over ``units`` (mixed into ``Coordinator``)."""

    config: RigConfig
    units: dict[str, PipetteUnit]
    view: FieldOfView
    schedule: Schedule | None
    blocked_by: dict[Step, str]
    log: EventLog
    pipette_machine: Machine

    # -- planning ----------------------------------------------------------------------
    def plan_for(self, unit: PipetteUnit, verify: bool = True) -> PipettePlan | None:
        """A fresh plan toward the unit's goal from where it is (None without a goal).

        With ``verify``, a pipette whose position is too uncertain to move near the others
        (and that is in view) is first only measured where it is.

        Raises
        ------
        PlanError
            The goal cannot be reached safely from here.
        """
        goal = unit.goal
        if goal is None:
            return None
        if unit.calibration is None:
            raise PlanError(f"{unit.name} is not calibrated")
        safety = self.config.safety
        here = unit.expected_tip_um()
        uncertain = unit.uncertainty_um() > VERIFY_ABOVE_UM
        # Its tip may be in view even when the estimate is not (it is that uncertain).
        in_view = self.view.contains(here, VIEW_MARGIN_UM - 0.5 * unit.uncertainty_um())
        if verify and uncertain and in_view and not unit.verify_failed:
            return plan_verify(unit.geometry, here)
        if goal.kind is GoalKind.APPROACH:
            assert goal.position_um is not None
            plan = plan_approach(
                unit.geometry,
                here,
                goal.position_um,
                safety,
                uncertainty_um=unit.uncertainty_um(),
                view=self.view,
            )
        elif goal.kind is GoalKind.RETRACT:
            plan = plan_retract(unit.geometry, here, safety)
        else:
            assert goal.position_um is not None
            plan = plan_move_to(unit.geometry, here, goal.position_um, safety)
        transform = unit.calibration.transform.shifted(unit.tracker.offset_um(unit.name))
        check_plan(plan, unit.geometry, transform, safety)
        return plan

    def replan(self) -> Schedule:
        """Stop automated moves, plan every pipette with a goal from where it is, sequence.

        Raises
        ------
        PlanError
            A goal that cannot be reached, a pipette whose position is unknown, or no
            collision-free order (``Blocked``); nothing moves then.
        """
        unknown = [u.name for u in self.units.values() if not u.is_calibrated()]
        if unknown:
            raise PlanError(
                f"{', '.join(unknown)} not calibrated: positions unknown, so clearance cannot "
                "be checked; calibrate first"
            )
        automatable = (PipetteState.READY, PipetteState.AT_TARGET, *_MOVING, PipetteState.PAUSED)
        plans: dict[str, PipettePlan | None] = {}
        for name, unit in self.units.items():
            settled = unit.state is PipetteState.AT_TARGET and (
                unit.goal is not None and unit.goal.kind is GoalKind.APPROACH
            )
            movable = unit.state in automatable and unit.state is not PipetteState.PAUSED
            plans[name] = self.plan_for(unit) if movable and not settled else None
        requests = {
            name: MotionRequest(
                unit.geometry,
                unit.expected_tip_um(),
                plans[name],
                unit.uncertainty_um(),
                VERIFIED_MARGIN_UM,
            )
            for name, unit in self.units.items()
        }
        schedule = schedule_moves(requests, self.config.safety.min_clearance_um)
        for name, unit in self.units.items():
            if unit.state not in automatable or unit.state is PipetteState.PAUSED:
                continue
            if unit.state in _MOVING:
                unit.halt()
                unit.replan()
            unit.set_plan(plans[name])
        self.schedule = schedule
        self.blocked_by = {}
        self.obstacles_changed()
        self.log.record(
            EventKind.PLAN,
            "coordinator",
            "plans sequenced",
            order=[str(s) for s in schedule.order],
            conflicts=[sorted(str(s) for s in pair) for pair in schedule.conflicts],
            plans={n: p.describe() for n, p in plans.items() if p is not None},
        )
        return schedule

    def obstacles_changed(self) -> None:
        """Re-check every pending or running step against pipettes out of automation."""
        if self.schedule is None:
            return
        obstacles = [
            u
            for u in self.units.values()
            if u.state in (PipetteState.MANUAL, PipetteState.FAULT) and u.is_calibrated()
        ]
        self.blocked_by = {}
        for unit in self.units.values():
            if unit.plan is None or unit.plan_done:
                continue
            for index, phase in enumerate(unit.plan.phases()):
                if index in unit.done_steps:
                    continue
                step = Step(unit.name, phase, index)
                for obstacle in obstacles:
                    if obstacle is unit:
                        continue
                    clear = self.schedule.clear_of(
                        step,
                        obstacle.geometry,
                        obstacle.expected_tip_um(),
                        obstacle.uncertainty_um(),
                    )
                    if clear:
                        continue
                    reason = f"blocked by {obstacle.name} ({obstacle.state.value})"
                    self.blocked_by[step] = reason
                    if index in unit.started_steps and unit.state in _MOVING:
                        unit.to_pause(reason)
