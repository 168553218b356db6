"""No-go zones drawn by the operator while running: checked, installed, every plan re-checked.

``checked_zones`` turns what the panel (or a script) sends into validated zone models.
``recheck_plans`` checks what is left of every pipette's plan against the zones: a pipette
under way whose path now passes too close to a zone is paused with the reason; one whose plan
has not started yet drops its target, with the reason in ``waiting_for``. New targets are
checked against the zones by the planner as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from patchpilot.config import NoGoZone, SafetyConfig
from patchpilot.control.pipette import PipetteUnit
from patchpilot.control.planning import check_zones
from patchpilot.control.plans import PipettePlan, PlanError
from patchpilot.control.states import PipetteState
from patchpilot.events import EventKind, EventLog

__all__ = ["checked_zones", "recheck_plans"]

_ZONE = TypeAdapter(NoGoZone)
_UNDER_WAY = (PipetteState.MOVING, PipetteState.APPROACHING, PipetteState.CORRECTING)


def checked_zones(zones: Iterable[NoGoZone | Mapping[str, Any]]) -> tuple[NoGoZone, ...]:
    """Validated zones (cylinder or capsule models, or their fields as mappings).

    Raises
    ------
    ValueError
        Naming the zone (by position) and what is wrong with it; nothing is installed.
    """
    if isinstance(zones, (str, bytes)) or not isinstance(zones, Iterable):
        raise ValueError(f"no-go zones must be a sequence of zones, got {type(zones).__name__}")
    result: list[NoGoZone] = []
    for index, zone in enumerate(zones):
        try:
            data = zone.model_dump() if hasattr(zone, "model_dump") else zone
            result.append(_ZONE.validate_python(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"no-go zone {index}: {problems}") from None
    return tuple(result)


def _remaining(unit: PipetteUnit) -> PipettePlan | None:
    """What is left of the unit's plan, from where its tip is now."""
    plan = unit.plan
    if plan is None or unit.plan_done or not unit.is_calibrated():
        return None
    first = max(unit.next_waypoint - (1 if unit.handle is not None else 0), 0)
    waypoints = plan.waypoints[first:]
    if not waypoints:
        return None
    return PipettePlan(plan.pipette, unit.expected_tip_um(), waypoints, plan.target_um)


def recheck_plans(
    units: Sequence[PipetteUnit], safety: SafetyConfig, log: EventLog
) -> dict[str, str]:
    """Check every remaining plan against ``safety.nogo_zones``; returns the refusals.

    The caller holds the controller's lock and has installed ``safety`` in every unit.
    """
    refused: dict[str, str] = {}
    for unit in units:
        remaining = _remaining(unit)
        if remaining is None:
            continue
        try:
            check_zones(remaining, unit.geometry, safety)
        except PlanError as exc:
            reason = str(exc)
            refused[unit.name] = reason
            log.record(EventKind.DECISION, unit.name, "plan refused by a no-go zone", reason=reason)
            if unit.state in _UNDER_WAY:
                unit.to_pause(reason)
            else:
                unit.goal = None
                unit.set_plan(None)
                unit.waiting_for = f"target dropped: {reason}"
    return refused
