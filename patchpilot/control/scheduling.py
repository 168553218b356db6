"""Sequencing several pipettes so that their bodies keep their clearance at every moment.

Each pipette's plan is cut into steps (its phases: travel, insert, retract). A step's bodies
are the pipette's cone swept along each of its moves, inflated by how uncertain the pipette's
true position is (``margin_um`` before its checkpoint, ``verified_margin_um`` after it).

``schedule_moves`` finds an order in which the steps, run one after the other, never bring a
moving body within the clearance of any other body (where the others wait at that moment). Two
steps of different pipettes whose swept volumes stay clear of each other may run at the same
time whatever their timing; two that conflict run in that order. The rule is timing-free: a
slow move, a correction or a pause cannot make two pipettes meet.

Raises ``Blocked`` (a ``PlanError``) naming the pipettes and distances when no order exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from patchpilot.control.bodies import Body, batch_distance_um, pipette_body
from patchpilot.control.geometry import PipetteGeometry
from patchpilot.control.planning import Phase, PipettePlan, PlanError

__all__ = ["Blocked", "MotionRequest", "Schedule", "Step", "schedule_moves", "static_clearance"]

Vector = NDArray[np.float64]

SAMPLE_SPACING_UM = 5.0
"""Moves are sampled this finely on one side of each distance (the error is subtracted)."""


class Blocked(PlanError):
    """No collision-free order exists for the requested moves."""


@dataclass(frozen=True)
class Step:
    """One phase of one pipette's plan."""

    pipette: str
    phase: Phase
    index: int

    def __str__(self) -> str:
        return f"{self.pipette} {self.phase.value}"


@dataclass(frozen=True)
class MotionRequest:
    """A pipette as the scheduler sees it.

    Parameters
    ----------
    geometry
        Its body.
    position_um
        Its tip now (sample frame, µm).
    plan
        Where it will go; None keeps it where it is (an obstacle).
    margin_um
        How far its true tip may be from ``position_um`` (and from the plan before its
        checkpoint), µm.
    verified_margin_um
        The same after its checkpoint measured and corrected it, µm.
    """

    geometry: PipetteGeometry
    position_um: Vector
    plan: PipettePlan | None = None
    margin_um: float = 0.0
    verified_margin_um: float = 0.0


@dataclass(frozen=True)
class _StepShape:
    step: Step
    sweeps: tuple[Body, ...]
    margin_um: float
    end_um: Vector
    end_margin_um: float


@dataclass(frozen=True)
class Schedule:
    """A safe order of steps, and which pairs of steps may not overlap in time."""

    order: tuple[Step, ...]
    conflicts: frozenset[frozenset[Step]]
    clearance_um: float
    shapes: Mapping[Step, _StepShape] = field(repr=False, compare=False)

    def steps_of(self, pipette: str) -> tuple[Step, ...]:
        return tuple(s for s in self.order if s.pipette == pipette)

    def blockers(self, step: Step, done: Iterable[Step]) -> list[Step]:
        """Steps that must end before ``step`` may start (empty: it may start now)."""
        finished = set(done)
        position = self.order.index(step)
        waiting = [s for s in self.steps_of(step.pipette) if s.index < step.index]
        waiting += [
            earlier
            for earlier in self.order[:position]
            if earlier.pipette != step.pipette and frozenset((earlier, step)) in self.conflicts
        ]
        return [s for s in waiting if s not in finished]

    def clear_of(
        self, step: Step, geometry: PipetteGeometry, position_um: Vector, margin_um: float
    ) -> bool:
        """Whether ``step``'s swept bodies stay clear of a body held at ``position_um``."""
        shape = self.shapes[step]
        if not shape.sweeps:
            return True
        static = pipette_body(geometry, position_um)
        distances = batch_distance_um([(static, sweep) for sweep in shape.sweeps])
        return bool(np.min(distances) >= self.clearance_um + shape.margin_um + margin_um)


def _shapes(name: str, request: MotionRequest) -> list[_StepShape]:
    plan = request.plan
    if plan is None:
        return []
    shapes: list[_StepShape] = []
    checked = False
    for index, phase in enumerate(plan.phases()):
        segments = plan.segments(phase)
        margin = request.verified_margin_um if checked else request.margin_um
        if phase in (Phase.VERIFY, Phase.TRAVEL) and any(w.checkpoint for _s, w in segments):
            end_margin = request.verified_margin_um
            checked = True
        else:
            end_margin = margin
        sweeps = tuple(
            pipette_body(request.geometry, start, waypoint.position_um)
            for start, waypoint in segments
        )
        shapes.append(
            _StepShape(
                Step(name, phase, index),
                sweeps,
                margin,
                segments[-1][1].position_um,
                end_margin,
            )
        )
    return shapes


def _spacing_first(a: Body, b: Body) -> tuple[Body, Body]:
    """Put the body with the shorter move first (it is the one sampled)."""
    if float(np.linalg.norm(a.travel_um)) <= float(np.linalg.norm(b.travel_um)):
        return a, b
    return b, a


def schedule_moves(
    requests: Mapping[str, MotionRequest],
    clearance_um: float,
    priority: Iterable[str] | None = None,
) -> Schedule:
    """A collision-free order for every requested plan (see the module docstring).

    Parameters
    ----------
    requests
        Every pipette on the rig, moving or not.
    clearance_um
        Minimum surface distance between two bodies (plus both margins).
    priority
        Pipettes to try first (default: the order of ``requests``).

    Raises
    ------
    Blocked
        No order keeps the clearance; the message names the closest conflicts.
    """
    names = list(requests)
    order_hint = [n for n in (priority or names) if n in requests]
    order_hint += [n for n in names if n not in order_hint]
    shapes = {name: _shapes(name, requests[name]) for name in names}
    # Where each pipette waits between its steps: boundary k is before its step k.
    boundaries: dict[str, list[tuple[Vector, float]]] = {}
    for name in names:
        request = requests[name]
        points = [(request.position_um, request.margin_um)]
        points += [(shape.end_um, shape.end_margin_um) for shape in shapes[name]]
        boundaries[name] = points

    wait_pairs: list[tuple[Body, Body]] = []
    wait_tags: list[tuple[Step, tuple[str, int], float]] = []
    both_pairs: list[tuple[Body, Body]] = []
    both_tags: list[tuple[Step, Step, float]] = []
    for name in names:
        for shape in shapes[name]:
            for other in names:
                if other == name:
                    continue
                for b_index, (point, margin) in enumerate(boundaries[other]):
                    static = pipette_body(requests[other].geometry, point)
                    for sweep in shape.sweeps:
                        wait_pairs.append((static, sweep))
                        wait_tags.append((shape.step, (other, b_index), shape.margin_um + margin))
                if other < name:
                    continue
                for other_shape in shapes[other]:
                    for sweep in shape.sweeps:
                        for other_sweep in other_shape.sweeps:
                            both_pairs.append(_spacing_first(sweep, other_sweep))
                            both_tags.append(
                                (
                                    shape.step,
                                    other_shape.step,
                                    shape.margin_um + other_shape.margin_um,
                                )
                            )
    distances = batch_distance_um(wait_pairs + both_pairs, SAMPLE_SPACING_UM)
    wait_gap: dict[tuple[Step, tuple[str, int]], float] = {}
    wait_detail: dict[tuple[Step, tuple[str, int]], tuple[float, float]] = {}
    for (step, where, margin), distance in zip(wait_tags, distances, strict=False):
        key = (step, where)
        if float(distance) - margin < wait_gap.get(key, np.inf):
            wait_gap[key] = float(distance) - margin
            wait_detail[key] = (float(distance), margin)
    conflicts: set[frozenset[Step]] = set()
    for (first, second, margin), distance in zip(
        both_tags, distances[len(wait_tags) :], strict=True
    ):
        if float(distance) - margin < clearance_um:
            conflicts.add(frozenset((first, second)))

    still = {
        shape.step
        for name in names
        for shape in shapes[name]
        if all(float(np.linalg.norm(sweep.travel_um)) < 1e-6 for sweep in shape.sweeps)
    }

    def allowed(step: Step, progress: Mapping[str, int]) -> bool:
        if step in still:
            return True  # moving nothing cannot bring anything closer
        return all(
            wait_gap[(step, (other, progress[other]))] >= clearance_um
            for other in names
            if other != step.pipette
        )

    for i, one in enumerate(names):
        for two in names[i + 1 :]:
            if not (shapes[one] and shapes[two]):
                continue
            if shapes[one][-1].step in still or shapes[two][-1].step in still:
                continue
            # Each must arrive while the other waits at its end: impossible if both block.
            gap_a = wait_gap[(shapes[one][-1].step, (two, len(shapes[two])))]
            gap_b = wait_gap[(shapes[two][-1].step, (one, len(shapes[one])))]
            if gap_a < clearance_um and gap_b < clearance_um:
                raise Blocked(
                    f"{one}'s last move passes within {max(gap_a, 0.0):.1f} µm of {two} at its "
                    f"goal and {two}'s within {max(gap_b, 0.0):.1f} µm of {one} at its goal "
                    f"(after position uncertainty; clearance {clearance_um:g} µm): whichever "
                    "went second would collide; choose other targets"
                )
    order = _search(names, order_hint, shapes, allowed)
    if order is None:
        raise Blocked(_explain(names, shapes, wait_gap, wait_detail, clearance_um))
    all_shapes = {shape.step: shape for name in names for shape in shapes[name]}
    return Schedule(tuple(order), frozenset(conflicts), clearance_um, all_shapes)


def _search(
    names: list[str],
    hint: list[str],
    shapes: Mapping[str, list[_StepShape]],
    allowed: Callable[[Step, Mapping[str, int]], bool],
) -> list[Step] | None:
    """Depth-first search over how far each pipette has got; failed states are remembered."""
    failed: set[tuple[int, ...]] = set()

    def visit(progress: dict[str, int], order: list[Step]) -> list[Step] | None:
        key = tuple(progress[n] for n in names)
        if key in failed:
            return None
        if all(progress[n] == len(shapes[n]) for n in names):
            return order
        for name in hint:
            if progress[name] == len(shapes[name]):
                continue
            step = shapes[name][progress[name]].step
            if not allowed(step, progress):
                continue
            progress[name] += 1
            found = visit(progress, [*order, step])
            progress[name] -= 1
            if found is not None:
                return found
        failed.add(key)
        return None

    return visit(dict.fromkeys(names, 0), [])


def _explain(
    names: list[str],
    shapes: Mapping[str, list[_StepShape]],
    wait_gap: Mapping[tuple[Step, tuple[str, int]], float],
    wait_detail: Mapping[tuple[Step, tuple[str, int]], tuple[float, float]],
    clearance_um: float,
) -> str:
    """Name the steps that are blocked by another pipette wherever that one waits."""
    reasons = []
    for name in names:
        for shape in shapes[name]:
            step = shape.step
            for other in names:
                keys = [
                    (step, (other, b))
                    for b in range(len(shapes[other]) + 1)
                    if (step, (other, b)) in wait_gap
                ]
                if not keys:
                    continue
                best = max(keys, key=lambda k: wait_gap[k])
                if wait_gap[best] < clearance_um:
                    distance, margin = wait_detail[best]
                    reasons.append(
                        f"{step} would pass {max(distance, 0.0):.1f} µm from {other} wherever it "
                        f"waits; needs {clearance_um:g} µm clearance + {margin:.1f} µm of "
                        "position uncertainty"
                    )
    detail = "; ".join(reasons) if reasons else "the moves block each other in every order"
    return f"no collision-free order for the requested moves: {detail}"


def static_clearance(requests: Mapping[str, MotionRequest]) -> dict[frozenset[str], float]:
    """Surface distance minus both margins between every pair of pipettes where they are now."""
    names = list(requests)
    pairs: list[tuple[Body, Body]] = []
    keys: list[tuple[str, str]] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs.append(
                (
                    pipette_body(requests[a].geometry, requests[a].position_um),
                    pipette_body(requests[b].geometry, requests[b].position_um),
                )
            )
            keys.append((a, b))
    distances = batch_distance_um(pairs)
    return {
        frozenset((a, b)): float(d) - requests[a].margin_um - requests[b].margin_um
        for (a, b), d in zip(keys, distances, strict=True)
    }
