"""Pipette bodies and no-go zones as convex solids, and the distance between them.

A pipette body is a cone from its tip back along ``-axis``: radius ``tip_radius + slope * s``
at distance ``s`` behind the tip. A ``Body`` is such a cone translated along a straight tip
displacement (a static body has no displacement). The set of points it covers is convex, so
the distance between two bodies is a convex minimisation over four parameters (where along
each move, how far back along each body); it is solved with L-BFGS-B from a few starts and is
exact to well under a micrometre. No-go zones become bodies too: a capsule is a segment with a
constant radius; a vertical cylinder is treated as a capsule along its axis, which is slightly
larger at its ends (conservative).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from patchpilot.config import CapsuleZone, CylinderZone, NoGoZone
from patchpilot.control.geometry import PipetteGeometry, as_point

__all__ = [
    "DEFAULT_BODY_LENGTH_UM",
    "Body",
    "batch_distance_um",
    "body_distance_um",
    "pipette_body",
    "sampled_distance_um",
    "tissue_part",
    "zone_body",
]

Vector = NDArray[np.float64]

DEFAULT_BODY_LENGTH_UM = 3000.0
"""How much of each pipette is modelled behind its tip (µm); farther back bodies diverge."""


@dataclass(frozen=True)
class Body:
    """A cone (or capsule, ``slope=0``) swept along a straight displacement of its tip.

    Parameters
    ----------
    tip_um
        Tip (apex centre) at the start of the move, sample frame.
    travel_um
        Displacement of the tip over the move (zeros when static).
    back
        Unit vector from the tip toward the far end.
    radius_um
        Radius at the tip.
    slope
        Radius gained per µm along ``back``.
    length_um
        Modelled length from the tip (µm).
    """

    tip_um: Vector
    travel_um: Vector
    back: Vector
    radius_um: float
    slope: float
    length_um: float

    def radius_at(self, s_um: float) -> float:
        return self.radius_um + self.slope * s_um

    def point(self, u: float, s_um: float) -> Vector:
        """Axis point ``s_um`` behind the tip, a fraction ``u`` through the move."""
        return self.tip_um + u * self.travel_um + s_um * self.back


def pipette_body(
    geometry: PipetteGeometry,
    tip_um: ArrayLike,
    end_um: ArrayLike | None = None,
    length_um: float = DEFAULT_BODY_LENGTH_UM,
) -> Body:
    """The body of ``geometry``'s pipette with its tip at ``tip_um`` (moving to ``end_um``)."""
    start = as_point(tip_um, "tip position")
    travel = np.zeros(3) if end_um is None else as_point(end_um, "tip end position") - start
    return Body(
        tip_um=start,
        travel_um=travel,
        back=-geometry.axis / np.linalg.norm(geometry.axis),
        radius_um=geometry.tip_radius_um,
        slope=geometry.taper_slope,
        length_um=length_um,
    )


def tissue_part(body: Body, surface_z_um: float) -> Body | None:
    """The part of a static body below the tissue surface, or None when none of it is."""
    if float(np.linalg.norm(body.travel_um)) > 0.0:
        raise ValueError("tissue_part needs a static body")
    depth_um = surface_z_um - float(body.tip_um[2])
    if depth_um <= 0.0:
        return None
    if body.back[2] <= 1e-9:
        return body  # a horizontal or downward body never leaves the tissue
    return Body(
        body.tip_um,
        body.travel_um,
        body.back,
        body.radius_um,
        body.slope,
        min(body.length_um, depth_um / float(body.back[2])),
    )


def zone_body(zone: NoGoZone) -> Body:
    """A no-go zone as a (capsule) body; cylinders get rounded ends (slightly larger)."""
    if isinstance(zone, CapsuleZone):
        start = as_point(zone.start_um, f"zone {zone.name} start")
        end = as_point(zone.end_um, f"zone {zone.name} end")
    elif isinstance(zone, CylinderZone):
        x, y = zone.center_xy_um
        start = np.array([x, y, zone.z_min_um], dtype=np.float64)
        end = np.array([x, y, zone.z_max_um], dtype=np.float64)
    else:  # pragma: no cover - the config union has two kinds
        raise TypeError(f"unknown zone {zone!r}")
    length = float(np.linalg.norm(end - start))
    back = (end - start) / length if length > 0.0 else np.array([0.0, 0.0, 1.0])
    return Body(start, np.zeros(3), back, float(zone.radius_um), 0.0, length)


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_ITERATIONS = 28  # shrinks each search interval by 0.618**28 ~ 1.4e-6


def _static_samples(body: Body, spacing_um: float) -> tuple[Vector, Vector, float]:
    """Tip positions along a move, every ``spacing_um`` at most, and the error so made (µm)."""
    travel_um = float(np.linalg.norm(body.travel_um))
    if travel_um == 0.0:
        return body.tip_um[None, :], body.back[None, :], 0.0
    count = max(2, math.ceil(travel_um / spacing_um) + 1)
    fractions = np.linspace(0.0, 1.0, count)
    tips = body.tip_um[None, :] + fractions[:, None] * body.travel_um[None, :]
    backs = np.repeat(body.back[None, :], count, axis=0)
    return tips, backs, travel_um / (count - 1) / 2.0


def _cone_point_gap(
    points: Vector, tips: Vector, backs: Vector, radius: Vector, slope: Vector, length: Vector
) -> Vector:
    """Distance from each point to each static cone's surface (closed form along the cone)."""
    offset = points - tips
    along = np.einsum("ij,ij->i", offset, backs)
    perpendicular = np.sqrt(np.maximum(np.einsum("ij,ij->i", offset, offset) - along**2, 0.0))
    # d/dt [sqrt(h^2 + (t - t0)^2) - k t] = 0 at t = t0 + k h / sqrt(1 - k^2); convex, so clip.
    best = np.clip(along + slope * perpendicular / np.sqrt(1.0 - slope**2), 0.0, length)
    gap: Vector = np.sqrt(perpendicular**2 + (best - along) ** 2) - radius - slope * best
    return gap


def _golden(function: Callable[[Vector], Vector], size: int) -> Vector:
    """Minimum over [0, 1] of a batch of convex functions of one variable (golden section)."""
    low = np.zeros(size)
    high = np.ones(size)
    x1 = high - _GOLDEN * (high - low)
    x2 = low + _GOLDEN * (high - low)
    f1, f2 = function(x1), function(x2)
    for _ in range(_ITERATIONS):
        left = f1 <= f2  # the minimum lies in [low, x2]; otherwise in [x1, high]
        low, high = np.where(left, low, x1), np.where(left, x2, high)
        new_x1 = np.where(left, high - _GOLDEN * (high - low), x2)
        new_x2 = np.where(left, x1, low + _GOLDEN * (high - low))
        evaluated = function(np.where(left, new_x1, new_x2))
        f1, f2 = np.where(left, evaluated, f2), np.where(left, f1, evaluated)
        x1, x2 = new_x1, new_x2
    ends = np.minimum(function(np.zeros(size)), function(np.ones(size)))
    return np.minimum(np.minimum(f1, f2), ends)


def batch_distance_um(
    pairs: Sequence[tuple[Body, Body]], spacing_um: float = 5.0
) -> NDArray[np.float64]:
    """Smallest surface distance (µm, <= 0 when touching) for each pair of bodies.

    The first body of each pair is sampled every ``spacing_um`` along its move (the result is
    lowered by half a sample step, so it never overstates the distance); the second body's move
    and both bodies' lengths are searched exactly (golden section on convex functions).
    """
    if not pairs:
        return np.zeros(0)
    rows: list[tuple[int, Vector, Vector, float]] = []
    for index, (a, _b) in enumerate(pairs):
        tips, backs, error_um = _static_samples(a, spacing_um)
        for tip, back in zip(tips, backs, strict=True):
            rows.append((index, tip, back, error_um))
    owner = np.array([r[0] for r in rows])
    a_tip = np.array([r[1] for r in rows])
    a_back = np.array([r[2] for r in rows])
    sample_error = np.array([r[3] for r in rows])
    a_radius = np.array([pairs[i][0].radius_um for i in owner])
    a_slope = np.array([pairs[i][0].slope for i in owner])
    a_length = np.array([pairs[i][0].length_um for i in owner])
    b_tip = np.array([pairs[i][1].tip_um for i in owner])
    b_travel = np.array([pairs[i][1].travel_um for i in owner])
    b_back = np.array([pairs[i][1].back for i in owner])
    b_radius = np.array([pairs[i][1].radius_um for i in owner])
    b_slope = np.array([pairs[i][1].slope for i in owner])
    b_length = np.array([pairs[i][1].length_um for i in owner])
    size = len(rows)

    def at_fraction(u: Vector) -> Vector:
        tips_b = b_tip + u[:, None] * b_travel

        def along_a(sigma: Vector) -> Vector:
            s = sigma * a_length
            points = a_tip + s[:, None] * a_back
            gap = _cone_point_gap(points, tips_b, b_back, b_radius, b_slope, b_length)
            surface_gap: Vector = gap - a_radius - a_slope * s
            return surface_gap

        return _golden(along_a, size)

    per_row = _golden(at_fraction, size) - sample_error
    result = np.full(len(pairs), np.inf)
    np.minimum.at(result, owner, per_row)
    return result


def body_distance_um(a: Body, b: Body, spacing_um: float = 5.0) -> float:
    """Smallest surface distance between two bodies (µm; <= 0 when they touch)."""
    return float(batch_distance_um([(a, b)], spacing_um)[0])


def sampled_distance_um(a: Body, b: Body, samples: int = 25) -> float:
    """Brute-force distance on a grid of parameters (an upper bound; used to check the solver)."""
    grid = np.linspace(0.0, 1.0, samples)
    u, sigma, v, tau = np.meshgrid(grid, grid, grid, grid, indexing="ij")
    points_a = (
        a.tip_um[:, None]
        + a.travel_um[:, None] * u.ravel()
        + a.back[:, None] * (sigma.ravel() * a.length_um)
    )
    points_b = (
        b.tip_um[:, None]
        + b.travel_um[:, None] * v.ravel()
        + b.back[:, None] * (tau.ravel() * b.length_um)
    )
    gaps = np.linalg.norm(points_a - points_b, axis=0)
    radii = (
        a.radius_um
        + a.slope * a.length_um * sigma.ravel()
        + b.radius_um
        + b.slope * b.length_um * tau.ravel()
    )
    return float(np.min(gaps - radii))
