"""Sequencing several pipettes: conflicts are ordered, and executing a schedule with any
timing the runtime rule allows keeps every pair of bodies apart and out of no-go zones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchpilot.config import (
    CylinderZone,
    PipetteConfig,
    SafetyConfig,
    SimulatedDriverConfig,
    SoftLimits,
)
from patchpilot.control.geometry import ManipulatorTransform, PipetteGeometry
from patchpilot.control.planning import PlanError, check_plan, plan_approach
from patchpilot.control.scheduling import Blocked, MotionRequest, Schedule, Step, schedule_moves

Vector = np.ndarray[Any, Any]
SAFETY = SafetyConfig(min_clearance_um=15.0, safe_height_um=120.0, approach_distance_um=80.0)
# Device = sample + 10 mm: every sensible plan is inside the soft limits.
TRANSFORM = ManipulatorTransform(np.eye(3), np.full(3, -10000.0))
# Axis samples for the independent distance check: fine near the tip, coarse far back.
_S = np.concatenate([np.linspace(0.0, 300.0, 61), np.linspace(320.0, 3000.0, 30)])


def geometry(name: str, yaw_deg: float, pitch_deg: float = 30.0) -> PipetteGeometry:
    return PipetteGeometry.from_config(
        PipetteConfig(
            name=name,
            driver=SimulatedDriverConfig(),
            pitch_deg=pitch_deg,
            yaw_deg=yaw_deg,
            soft_limits=SoftLimits(min_um=(0, 0, 0), max_um=(20000,) * 3),
            target_standoff_um=2.0,
        )
    )


def independent_gap(a: PipetteGeometry, tip_a: Vector, b: PipetteGeometry, tip_b: Vector) -> float:
    """Surface distance of two static bodies from points along their axes (an upper bound)."""
    points_a = tip_a - _S[:, None] * a.axis
    points_b = tip_b - _S[:, None] * b.axis
    gaps = np.linalg.norm(points_a[:, None, :] - points_b[None, :, :], axis=2)
    radii = (a.tip_radius_um + a.taper_slope * _S)[:, None] + (
        b.tip_radius_um + b.taper_slope * _S
    )[None, :]
    return float(np.min(gaps - radii))


def zone_gap(g: PipetteGeometry, tip: Vector, zone: CylinderZone, surface: float) -> float:
    """Distance from the in-tissue part of a body to a vertical cylinder (exact shape)."""
    if tip[2] >= surface:
        return math.inf
    s = np.linspace(0.0, (surface - tip[2]) / -g.axis[2], 200)
    points = tip - s[:, None] * g.axis
    radial = np.linalg.norm(points[:, :2] - np.asarray(zone.center_xy_um), axis=1)
    inside_z = (points[:, 2] >= zone.z_min_um) & (points[:, 2] <= zone.z_max_um)
    gap = np.where(inside_z, radial - zone.radius_um, np.inf) - (
        g.tip_radius_um + g.taper_slope * s
    )
    return float(np.min(gap))


def execute(
    schedule: Schedule, plans: dict[str, Any], rng: np.random.Generator
) -> list[dict[str, Vector]]:
    """Tip positions over time when every step starts a random delay after its blockers end
    and moves at a random fraction of its speed; sampled so nothing moves > 4 µm between."""
    end_of: dict[Step, float] = {}
    motions: list[tuple[str, float, float, Vector, Vector]] = []
    for step in schedule.order:
        ready = max((end_of[b] for b in schedule.blockers(step, ())), default=0.0)
        t = ready + float(rng.uniform(0.0, 2.0))
        factor = float(rng.uniform(0.3, 3.0))
        for start, waypoint in plans[step.pipette].segments(step.phase):
            duration = float(np.linalg.norm(waypoint.position_um - start)) / (
                waypoint.speed_um_s * factor
            )
            motions.append((step.pipette, t, t + duration, start, waypoint.position_um))
            t += duration
        end_of[step] = t
    times = {0.0}
    for _name, t0, t1, a, b in motions:
        count = max(1, math.ceil(float(np.linalg.norm(b - a)) / 4.0))
        times.update(np.linspace(t0, t1, count + 1).tolist())
    samples = []
    for t in sorted(times):
        where = {name: plan.start_um for name, plan in plans.items()}
        for name, t0, t1, a, b in motions:
            if t >= t1:
                where[name] = b
            elif t > t0:
                where[name] = a + (b - a) * (t - t0) / (t1 - t0)
        samples.append(dict(where))
    return samples


@st.composite
def scenes(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(2, 4))
    corners = draw(st.permutations([45.0, 135.0, 225.0, 315.0]))[:count]
    pipettes = {}
    for index, corner in enumerate(corners):
        yaw = corner + draw(st.floats(-12.0, 12.0))
        radius = draw(st.floats(80.0, 130.0))
        start = np.array(
            [
                -radius * math.cos(math.radians(yaw)),
                -radius * math.sin(math.radians(yaw)),
                draw(st.floats(20.0, 90.0)),
            ]
        )
        target = np.array(
            [draw(st.floats(-60, 60)), draw(st.floats(-60, 60)), draw(st.floats(-110, -30))]
        )
        pipettes[f"P{index + 1}"] = (
            geometry(f"P{index + 1}", yaw, draw(st.floats(22.0, 40.0))),
            start,
            target,
        )
    zone = CylinderZone(
        name="vessel",
        center_xy_um=(draw(st.floats(-60, 60)), draw(st.floats(-60, 60))),
        radius_um=draw(st.floats(4.0, 15.0)),
        z_min_um=-500.0,
        z_max_um=0.0,
    )
    return {"pipettes": pipettes, "zone": zone, "seed": draw(st.integers(0, 2**31))}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_random_schedules_keep_clearance_and_avoid_zones(scene: dict[str, Any]) -> None:
    safety = SafetyConfig(**{**SAFETY.model_dump(), "nogo_zones": (scene["zone"],)})
    plans = {}
    requests = {}
    for name, (g, start, target) in scene["pipettes"].items():
        try:
            plan = plan_approach(g, start, target, safety)
            check_plan(plan, g, TRANSFORM, safety)
        except PlanError:
            plan = None  # refused (a zone in the way): it stays where it is
        if plan is not None:
            plans[name] = plan
        requests[name] = MotionRequest(g, start, plan)
    try:
        schedule = schedule_moves(requests, safety.min_clearance_um)
    except Blocked:
        return  # refusing is always safe; accepting must be right
    static = {n: r.position_um for n, r in requests.items() if n not in plans}
    geometries = {n: g for n, (g, _s, _t) in scene["pipettes"].items()}
    for sample in execute(schedule, plans, np.random.default_rng(scene["seed"])):
        where = {**static, **sample}
        names = sorted(where)
        for i, a in enumerate(names):
            assert zone_gap(geometries[a], where[a], scene["zone"], 0.0) >= 0.0
            for b in names[i + 1 :]:
                gap = independent_gap(geometries[a], where[a], geometries[b], where[b])
                assert gap >= safety.min_clearance_um - 1e-6, (a, b, gap)


def test_crossing_paths_are_sequenced() -> None:
    """Two pipettes whose targets sit on each other's approach are ordered, not run together."""
    west, east = geometry("W", 0.0), geometry("E", 180.0)
    plans = {
        "W": plan_approach(west, (-100.0, 0.0, 60.0), (31.0, -16.0, -91.0), SAFETY),
        "E": plan_approach(east, (100.0, 0.0, 60.0), (-17.0, 5.0, -61.0), SAFETY),
    }
    requests = {
        "W": MotionRequest(west, np.array([-100.0, 0.0, 60.0]), plans["W"]),
        "E": MotionRequest(east, np.array([100.0, 0.0, 60.0]), plans["E"]),
    }
    schedule = schedule_moves(requests, 15.0)
    inserts = [s for s in schedule.order if s.phase.value == "insert"]
    assert frozenset(inserts) in schedule.conflicts, "their insertions pass close to each other"
    assert inserts[0] in schedule.blockers(inserts[1], ())
    assert (
        schedule.blockers(inserts[1], set(schedule.order[: schedule.order.index(inserts[1])])) == []
    )


def test_impossible_pair_is_refused_with_reason() -> None:
    west, east = geometry("W", 0.0), geometry("E", 180.0)
    plans = {
        "W": plan_approach(west, (-100.0, 0.0, 60.0), (0.0, 0.0, -60.0), SAFETY),
        "E": plan_approach(east, (100.0, 0.0, 60.0), (4.0, 0.0, -60.0), SAFETY),
    }
    requests = {
        n: MotionRequest(g, p.start_um, p)
        for (n, g), p in zip([("W", west), ("E", east)], plans.values(), strict=True)
    }
    with pytest.raises(Blocked, match=r"would collide|no collision-free order"):
        schedule_moves(requests, 15.0)


def test_uncertain_neighbour_blocks_until_margin_allows() -> None:
    """The same moves are refused when the other pipette's position is very uncertain."""
    west, east = geometry("W", 0.0), geometry("E", 180.0)
    plan = plan_approach(west, (-100.0, 0.0, 60.0), (0.0, 0.0, -60.0), SAFETY)
    parked = np.array([70.0, 0.0, 60.0])
    sure = {"W": MotionRequest(west, plan.start_um, plan), "E": MotionRequest(east, parked)}
    schedule_moves(sure, 15.0)
    unsure = {
        "W": MotionRequest(west, plan.start_um, plan),
        "E": MotionRequest(east, parked, None, 150.0),
    }
    with pytest.raises(Blocked, match="position uncertainty"):
        schedule_moves(unsure, 15.0)
