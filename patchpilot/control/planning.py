"""Safe paths for one pipette, as readable lists of waypoints with a reason each.

An approach, acq4 style (sample frame, tip positions):

1. retract along the pipette axis to the safe height (axial first when in the tissue);
2. move laterally, at the safe height, onto the line along the pipette axis through the target;
3. descend along that line to the checkpoint just above the surface (the tip is measured and
   corrected there, outside the tissue);
4. descend along the line to the approach start (``approach_distance_um`` from the target),
   slowly once below the surface;
5. advance slowly along the line to the standoff point (``target_standoff_um`` short of the
   target).

Below the surface only moves along the pipette axis are planned. A pipette whose tip already
lies on the target line, short of the standoff point (a resumed approach), continues along the
line without retracting. Plans are values: ``check_plan`` checks every waypoint against the
soft limits (through the inverse transform) and the no-go zones before anything moves;
execution lives in ``pipette.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from patchpilot.config import SafetyConfig
from patchpilot.control.bodies import body_distance_um, pipette_body, tissue_part, zone_body
from patchpilot.control.geometry import (
    FieldOfView,
    ManipulatorTransform,
    PipetteGeometry,
    as_point,
)
from patchpilot.control.plans import Phase, PipettePlan, PlanError, Waypoint, WaypointReason

__all__ = [
    "CHECKPOINT_HEIGHT_UM",
    "NOGO_MARGIN_UM",
    "ON_LINE_TOLERANCE_UM",
    "VIEW_MARGIN_UM",
    "Phase",
    "PipettePlan",
    "PlanError",
    "Waypoint",
    "WaypointReason",
    "check_plan",
    "check_zones",
    "plan_approach",
    "plan_move_to",
    "plan_retract",
    "plan_verify",
]

Vector = NDArray[np.float64]

CHECKPOINT_HEIGHT_UM = 15.0
"""Height above the surface, on the target line, where the tip is measured before it enters."""
ON_LINE_TOLERANCE_UM = 3.0
"""A tip this close to the target line (perpendicular, µm) may continue along it."""
NOGO_MARGIN_UM = 5.0
"""A body in the tissue keeps at least this far from every no-go zone (µm): the tip's
true position is only known to a micrometre or two."""
VIEW_MARGIN_UM = 12.0
"""Checkpoints and targets must lie this far inside the field of view to be measured."""
SHANK_IN_VIEW_UM = 20.0
"""A tip is measured where this much of its shank (projected, µm) is in view behind it too:
its depth is read where the shank crosses focus (``depth.py``)."""
_SHANK_MARGIN_UM = 2.0
_SAME_POINT_UM = 0.05


def _line_parameter(point: Vector, target: Vector, axis: Vector) -> tuple[float, float]:
    """(distance behind the target along the line, perpendicular distance) of ``point``."""
    offset = target - point
    along = float(offset @ axis)
    return along, float(np.linalg.norm(offset - along * axis))


def _speed(geometry: PipetteGeometry, start: Vector, end: Vector, surface_z_um: float) -> float:
    in_tissue = min(float(start[2]), float(end[2])) < surface_z_um
    return geometry.slow_speed_um_s if in_tissue else geometry.fast_speed_um_s


def plan_retract(
    geometry: PipetteGeometry, start_um: ArrayLike, safety: SafetyConfig
) -> PipettePlan:
    """Back out along the pipette axis until the tip is at the safe height (or stay put)."""
    start = as_point(start_um, f"{geometry.name} tip position")
    surface = safety.tissue_surface_z_um
    waypoints = _retract_waypoints(
        geometry, start, surface + safety.safe_height_um, surface, Phase.RETRACT
    )
    return PipettePlan(geometry.name, start, tuple(waypoints))


def _retract_waypoints(
    geometry: PipetteGeometry, start: Vector, safe_z: float, surface: float, phase: Phase
) -> list[Waypoint]:
    """Back out along the axis until the tip is at ``safe_z`` (none when already above)."""
    if float(start[2]) >= safe_z - _SAME_POINT_UM:
        return []
    rise_per_um = -float(geometry.axis[2])  # backing out raises the tip this much per µm
    builder = _Builder(geometry, start, surface)
    if float(start[2]) < surface:  # leave the tissue slowly, then back out fast
        exit_point = start - geometry.axis * ((surface - float(start[2])) / rise_per_um)
        builder.add(WaypointReason.RETRACT_AXIAL, exit_point, phase)
    top = start - geometry.axis * ((safe_z - float(start[2])) / rise_per_um)
    builder.add(WaypointReason.RETRACT_AXIAL, top, phase)
    return builder.waypoints


def plan_approach(
    geometry: PipetteGeometry,
    start_um: ArrayLike,
    target_um: ArrayLike,
    safety: SafetyConfig,
    *,
    uncertainty_um: float = 0.0,
    view: FieldOfView | None = None,
) -> PipettePlan:
    """The path from the tip's position to the standoff point before ``target_um``.

    Parameters
    ----------
    geometry
        The pipette.
    start_um, target_um
        Estimated tip now, and the target (sample frame, µm).
    safety
        Surface, safe height, approach distance.
    uncertainty_um
        How far the true tip may be from the estimate (µm): the checkpoint and the travel
        height are raised by it, so an uncertain tip cannot touch the tissue before it has
        been measured.
    view
        The camera's field; the checkpoint must lie in it to be measured. When the line's
        checkpoint does not, the tip is measured at the nearest visible point at the same
        height, then moves onto the line there (above the tissue).

    Raises
    ------
    PlanError
        A non-finite position, a target outside the field of view, or a target the pipette
        cannot reach along its axis from above.
    """
    name = geometry.name
    try:
        start = as_point(start_um, f"{name} tip position")
        target = as_point(target_um, f"{name} target")
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    if not (np.isfinite(uncertainty_um) and uncertainty_um >= 0):
        raise PlanError(f"{name}: uncertainty {uncertainty_um} µm must be finite and >= 0")
    axis = geometry.axis
    surface = safety.tissue_surface_z_um
    checkpoint_z = surface + CHECKPOINT_HEIGHT_UM + uncertainty_um
    safe_z = surface + max(safety.safe_height_um, CHECKPOINT_HEIGHT_UM + uncertainty_um)
    if view is not None and not view.contains(target, VIEW_MARGIN_UM):
        raise PlanError(
            f"{name}: target ({target[0]:.1f}, {target[1]:.1f}) µm lies outside the field of "
            "view; the approach could not be watched"
        )
    if float(target[2]) >= checkpoint_z:
        raise PlanError(
            f"{name}: target z {float(target[2]):.1f} µm is above the checkpoint height "
            f"{checkpoint_z:.1f} µm; nothing to approach"
        )
    sink = -float(axis[2])  # depth gained per µm along the axis
    if sink <= 0.05:
        raise PlanError(f"{name}: the pipette axis is too flat to approach from above")

    def on_line(behind_um: float) -> Vector:
        return target - axis * behind_um

    def behind_at_height(z_um: float) -> float:
        return (z_um - float(target[2])) / sink

    standoff_behind = geometry.standoff_um
    top_behind = behind_at_height(safe_z)
    checkpoint_behind = behind_at_height(checkpoint_z)
    checkpoint = on_line(checkpoint_behind)
    # An uncertain tip must be in view wherever it really is: keep it further inside.
    view_margin = VIEW_MARGIN_UM + uncertainty_um
    visible = view is None or _measurable(view, checkpoint, axis, view_margin)
    # Stops along the line below the checkpoint, deepest last.
    inside: list[tuple[float, WaypointReason]] = [
        (standoff_behind, WaypointReason.ADVANCE_TO_STANDOFF)
    ]
    approach_behind = max(safety.approach_distance_um, standoff_behind)
    if approach_behind < checkpoint_behind:
        inside.append((approach_behind, WaypointReason.DESCEND_TO_APPROACH_START))
    surface_behind = behind_at_height(surface)
    if standoff_behind < surface_behind < checkpoint_behind:
        inside.append((surface_behind, WaypointReason.DESCEND_TO_SURFACE))
    inside.sort(key=lambda stop: -stop[0])

    builder = _Builder(geometry, start, surface)
    along, off_line = _line_parameter(start, target, axis)
    on_the_line = off_line <= ON_LINE_TOLERANCE_UM and standoff_behind - 0.5 <= along
    if on_the_line and float(start[2]) < surface:
        # Resuming inside the tissue: only forward along the line.
        for behind, reason in inside:
            if behind < along - _SAME_POINT_UM:
                builder.add(reason, on_line(behind), Phase.INSERT)
    elif on_the_line and visible and along <= top_behind:
        # Resuming above the surface on the line: measure before entering.
        if checkpoint_behind < along - _SAME_POINT_UM:
            builder.add(WaypointReason.DESCEND_TO_CHECKPOINT, checkpoint, Phase.TRAVEL, True)
        else:
            builder.add(WaypointReason.MEASURE_HERE, start, Phase.TRAVEL, True)
        for behind, reason in inside:
            if behind < along - _SAME_POINT_UM:
                builder.add(reason, on_line(behind), Phase.INSERT)
    else:
        for waypoint in _retract_waypoints(geometry, start, safe_z, surface, Phase.TRAVEL):
            builder.append(waypoint)
        if visible:
            builder.lateral_to(on_line(top_behind), safe_z)
            if approach_behind > checkpoint_behind and approach_behind < top_behind:
                builder.add(
                    WaypointReason.DESCEND_TO_APPROACH_START,
                    on_line(approach_behind),
                    Phase.TRAVEL,
                )
            builder.add(WaypointReason.DESCEND_TO_CHECKPOINT, checkpoint, Phase.TRAVEL, True)
        else:
            assert view is not None
            measure_point = _clamp_measurable(view, checkpoint, axis, view_margin)
            builder.lateral_to(np.array([measure_point[0], measure_point[1], safe_z]), safe_z)
            builder.add(WaypointReason.DESCEND_TO_MEASURE_POINT, measure_point, Phase.TRAVEL, True)
            builder.add(WaypointReason.RETURN_TO_LINE, checkpoint, Phase.TRAVEL)
        for behind, reason in inside:
            builder.add(reason, on_line(behind), Phase.INSERT)
    return PipettePlan(name, start, tuple(builder.waypoints), target, on_line(standoff_behind))


def _shank_back_um(axis: Vector) -> Vector:
    """Sample x, y displacement from a tip to the shank point that must be in view too."""
    flat = np.array([float(axis[0]), float(axis[1])])
    return -SHANK_IN_VIEW_UM * flat / max(float(np.linalg.norm(flat)), 1e-9)


def _measurable(view: FieldOfView, point: Vector, axis: Vector, margin_um: float) -> bool:
    """Whether a tip at ``point`` can be measured: in view, with its shank behind it."""
    back = _shank_back_um(axis)
    behind = np.array([point[0] + back[0], point[1] + back[1], point[2]])
    return view.contains(point, margin_um) and view.contains(behind, _SHANK_MARGIN_UM)


def _clamp_measurable(view: FieldOfView, point: Vector, axis: Vector, margin_um: float) -> Vector:
    """The nearest point (same height) where a tip can be measured (see ``_measurable``)."""
    back = _shank_back_um(axis)
    clamped = np.array(point, dtype=np.float64)
    for index, (center, half) in enumerate(
        ((view.center_um[0], view.width_um / 2), (view.center_um[1], view.height_um / 2))
    ):
        low = max(center - half + margin_um, center - half + _SHANK_MARGIN_UM - back[index])
        high = min(center + half - margin_um, center + half - _SHANK_MARGIN_UM - back[index])
        clamped[index] = float(np.clip(clamped[index], low, max(low, high)))
    return clamped


class _Builder:
    """Appends waypoints with speeds and in-tissue flags worked out from the previous one."""

    def __init__(self, geometry: PipetteGeometry, start: Vector, surface_z_um: float) -> None:
        self.geometry = geometry
        self.here = start
        self.surface = surface_z_um
        self.waypoints: list[Waypoint] = []

    def append(self, waypoint: Waypoint) -> None:
        self.waypoints.append(waypoint)
        self.here = waypoint.position_um

    def add(
        self, reason: WaypointReason, point: Vector, phase: Phase, checkpoint: bool = False
    ) -> None:
        in_tissue = min(float(self.here[2]), float(point[2])) < self.surface
        speed = _speed(self.geometry, self.here, point, self.surface)
        self.append(Waypoint(reason, point, speed, phase, in_tissue, checkpoint))

    def lateral_to(self, point: Vector, cruise_z_um: float) -> None:
        """Go over at the higher of the cruise height and the current height, then down."""
        if float(self.here[2]) > cruise_z_um + _SAME_POINT_UM:
            above = np.array([point[0], point[1], self.here[2]])
            self.add(WaypointReason.LATERAL_ABOVE_LINE, above, Phase.TRAVEL)
        self.add(WaypointReason.LATERAL_ABOVE_LINE, point, Phase.TRAVEL)


def plan_verify(geometry: PipetteGeometry, start_um: ArrayLike) -> PipettePlan:
    """Measure the tip where it is, moving nothing (its position is too uncertain to plan)."""
    start = as_point(start_um, f"{geometry.name} tip position")
    waypoint = Waypoint(
        WaypointReason.MEASURE_HERE,
        start,
        geometry.slow_speed_um_s,
        Phase.VERIFY,
        False,
        checkpoint=True,
    )
    return PipettePlan(geometry.name, start, (waypoint,))


def plan_move_to(
    geometry: PipetteGeometry, start_um: ArrayLike, goal_um: ArrayLike, safety: SafetyConfig
) -> PipettePlan:
    """Go to a position above the tissue (home, a parking spot): retract, over, down.

    Raises
    ------
    PlanError
        The goal lies in the tissue (only the approach may enter it).
    """
    start = as_point(start_um, f"{geometry.name} tip position")
    goal = as_point(goal_um, f"{geometry.name} goal")
    surface = safety.tissue_surface_z_um
    if float(goal[2]) < surface:
        raise PlanError(
            f"{geometry.name}: goal z {float(goal[2]):.1f} µm is below the tissue surface "
            f"({surface:g} µm); only an approach may enter the tissue"
        )
    safe_z = surface + safety.safe_height_um
    waypoints = _retract_waypoints(geometry, start, safe_z, surface, Phase.RETRACT)
    here = waypoints[-1].position_um if waypoints else start
    cruise_z = max(safe_z, float(here[2]), float(goal[2]))
    for point in (np.array([here[0], here[1], cruise_z]), np.array([goal[0], goal[1], cruise_z])):
        if float(np.linalg.norm(point - here)) > _SAME_POINT_UM:
            waypoints.append(
                Waypoint(
                    WaypointReason.MOVE_ABOVE_TISSUE,
                    point,
                    geometry.fast_speed_um_s,
                    Phase.RETRACT,
                    False,
                )
            )
            here = point
    if float(np.linalg.norm(goal - here)) > _SAME_POINT_UM:
        waypoints.append(
            Waypoint(
                WaypointReason.MOVE_ABOVE_TISSUE,
                goal,
                geometry.fast_speed_um_s,
                Phase.RETRACT,
                False,
            )
        )
    return PipettePlan(geometry.name, start, tuple(waypoints))


def check_plan(
    plan: PipettePlan,
    geometry: PipetteGeometry,
    transform: ManipulatorTransform,
    safety: SafetyConfig,
) -> None:
    """Refuse a plan that leaves the soft limits, moves sideways in the tissue or enters a zone.

    Straight moves in the sample frame are straight in device axes (the map is affine) and
    the limits are a box, so checking the waypoints checks the whole path.

    Raises
    ------
    PlanError
        Naming the pipette, the waypoint and what is wrong.
    """
    surface = safety.tissue_surface_z_um
    here = plan.start_um
    for index, waypoint in enumerate(plan.waypoints, start=1):
        label = f"{plan.pipette}: waypoint {index} ({waypoint.reason.value})"
        device_um = transform.to_manipulator(waypoint.position_um)
        for axis, (value, low, high) in enumerate(
            zip(device_um, geometry.limits.min_um, geometry.limits.max_um, strict=False)
        ):
            if not low <= float(value) <= high:
                raise PlanError(
                    f"{label} needs axis {axis} at {float(value):.1f} µm, outside the soft "
                    f"limits [{low:g}, {high:g}]: target unreachable"
                )
        if min(float(here[2]), float(waypoint.position_um[2])) < surface - _SAME_POINT_UM:
            sideways = geometry.off_axis_um(waypoint.position_um - here)
            if sideways > 0.5:
                raise PlanError(f"{label} moves {sideways:.1f} µm sideways inside the tissue")
        here = waypoint.position_um
    check_zones(plan, geometry, safety)


def check_zones(plan: PipettePlan, geometry: PipetteGeometry, safety: SafetyConfig) -> None:
    """Refuse a plan whose body, inside the tissue, comes within ``NOGO_MARGIN_UM`` of a zone.

    Raises
    ------
    PlanError
        Naming the pipette, the waypoint and the zone.
    """
    surface = safety.tissue_surface_z_um
    for zone in safety.nogo_zones:
        zone_solid = zone_body(zone)
        for _start, waypoint in plan.segments():
            if not waypoint.in_tissue:
                continue
            # The deepest point of an axial move covers the whole move's in-tissue body.
            inside = tissue_part(pipette_body(geometry, waypoint.position_um), surface)
            if inside is None:
                continue
            gap = body_distance_um(inside, zone_solid)
            if gap < NOGO_MARGIN_UM:
                raise PlanError(
                    f"{plan.pipette}: the path to {waypoint.reason.value} passes "
                    f"{max(gap, 0.0):.1f} µm from no-go zone {zone.name!r} (at least "
                    f"{NOGO_MARGIN_UM:g} µm needed): target unreachable"
                )
