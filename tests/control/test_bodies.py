"""Distances between pipette bodies and zones: exact cases, and never more than the truth."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.config import CapsuleZone, CylinderZone
from patchpilot.control.bodies import (
    Body,
    batch_distance_um,
    body_distance_um,
    sampled_distance_um,
    tissue_part,
    zone_body,
)


def capsule(
    start: tuple[float, float, float],
    direction: tuple[float, float, float],
    length: float,
    radius: float,
    travel: tuple[float, float, float] = (0, 0, 0),
) -> Body:
    back = np.asarray(direction, float) / np.linalg.norm(direction)
    return Body(np.asarray(start, float), np.asarray(travel, float), back, radius, 0.0, length)


def test_parallel_capsules() -> None:
    a = capsule((0, 0, 0), (1, 0, 0), 100, 2)
    b = capsule((0, 30, 0), (1, 0, 0), 100, 3)
    assert body_distance_um(a, b) == pytest.approx(25.0, abs=1e-3)


def test_crossing_capsules_touch() -> None:
    a = capsule((-50, 0, 0), (1, 0, 0), 100, 1)
    b = capsule((0, -50, 0.5), (0, 1, 0), 100, 1)
    assert body_distance_um(a, b) < 0


def test_cone_grows_behind_the_tip() -> None:
    cone = Body(np.zeros(3), np.zeros(3), np.array([0.0, 0.0, 1.0]), 1.0, 0.1, 500.0)
    near = capsule((20, 0, 0), (0, 0, 1), 1e-9, 0.0)  # a point 20 µm beside the tip
    high = capsule((20, 0, 100), (0, 0, 1), 1e-9, 0.0)  # beside the body, 100 µm up
    # min over t of sqrt(h^2 + (t - t0)^2) - r - k t, reached at t = t0 + k h / sqrt(1 - k^2)
    t_near = 0.1 * 20 / np.sqrt(0.99)
    expected_near = np.hypot(20, t_near) - 1 - 0.1 * t_near
    assert body_distance_um(cone, near) == pytest.approx(expected_near, abs=1e-3)
    assert body_distance_um(cone, high) == pytest.approx(expected_near - 10.0, abs=1e-3)


def test_moving_body_sweeps_through() -> None:
    obstacle = capsule((0, 0, 0), (0, 0, 1), 10, 1)
    passing = capsule((-50, 0, 5), (0, 1, 0), 10, 1, travel=(100, 0, 0))
    assert body_distance_um(passing, obstacle) < 0
    assert body_distance_um(obstacle, passing) < 0


def test_solver_never_overstates_the_distance() -> None:
    """Against a brute-force grid (an upper bound), the solver is never larger and stays
    within the documented sampling error."""
    rng = np.random.default_rng(5)
    pairs = []
    for _ in range(24):
        bodies = []
        for _side in range(2):
            back = rng.normal(size=3)
            bodies.append(
                Body(
                    rng.uniform(-80, 80, 3),
                    rng.uniform(-60, 60, 3) * rng.integers(0, 2),
                    back / np.linalg.norm(back),
                    0.75,
                    0.09 * rng.integers(0, 2),
                    rng.uniform(20, 300),
                )
            )
        pairs.append((bodies[0], bodies[1]))
    solved = batch_distance_um(pairs, spacing_um=2.0)
    for (a, b), distance in zip(pairs, solved, strict=True):
        brute = sampled_distance_um(a, b, samples=21)
        assert distance <= brute + 1e-9
        step = (
            max(np.linalg.norm(a.travel_um), np.linalg.norm(b.travel_um), a.length_um, b.length_um)
            / 20
        )
        assert distance >= brute - step - 1.0  # grid resolution plus the sampled side's error


def test_tissue_part_and_zones() -> None:
    cone = Body(np.array([0.0, 0, -30]), np.zeros(3), np.array([0.0, -0.8, 0.6]), 1, 0.1, 3000)
    inside = tissue_part(cone, 0.0)
    assert inside is not None and inside.length_um == pytest.approx(50.0)
    assert tissue_part(capsule((0, 0, 10), (0, 0, 1), 10, 1), 0.0) is None
    cylinder = zone_body(CylinderZone(center_xy_um=(5, 5), radius_um=4, z_min_um=-100, z_max_um=0))
    assert cylinder.length_um == pytest.approx(100.0)
    capsule_zone = zone_body(CapsuleZone(start_um=(0, 0, 0), end_um=(0, 10, 0), radius_um=2))
    assert capsule_zone.radius_um == 2 and capsule_zone.slope == 0
