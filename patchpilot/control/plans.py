"""Plans as values: waypoints with a reason each, grouped in phases.

A ``PipettePlan`` is a readable list of straight tip moves (sample frame, µm) with speeds and
reasons; ``planning.py`` makes them, ``scheduling.py`` sequences them, ``pipette.py`` executes
them, ``drawing.py`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

__all__ = ["Phase", "PipettePlan", "PlanError", "Waypoint", "WaypointReason"]

Vector = NDArray[np.float64]


class PlanError(ValueError):
    """A plan that cannot be executed safely; the message names the pipette and the reason."""


class WaypointReason(str, Enum):
    """Why the tip goes to a waypoint (the value is the sentence shown to the operator)."""

    RETRACT_AXIAL = "retract along the pipette axis to the safe height"
    LATERAL_ABOVE_LINE = "move laterally at the safe height onto the line through the target"
    DESCEND_TO_CHECKPOINT = "descend along the axis to the checkpoint above the surface"
    DESCEND_TO_MEASURE_POINT = "descend to where the tip is seen, above the surface"
    RETURN_TO_LINE = "move at the checkpoint height onto the line through the target"
    MEASURE_HERE = "hold here while the tip is measured, above the surface"
    DESCEND_TO_SURFACE = "descend along the axis to the tissue surface"
    DESCEND_TO_APPROACH_START = "descend along the axis to the approach start"
    ADVANCE_TO_STANDOFF = "advance slowly along the axis to the standoff point"
    MOVE_ABOVE_TISSUE = "move straight to the requested position above the tissue"


class Phase(str, Enum):
    """Plan sections that the coordinator sequences against other pipettes."""

    VERIFY = "verify"
    """Measure the tip where it is (no motion) before planning moves near the others."""
    TRAVEL = "travel"
    """Everything above the tissue, ending at the checkpoint (then measured and corrected)."""
    INSERT = "insert"
    """From the checkpoint along the axis to the standoff point (then converged)."""
    RETRACT = "retract"
    """Out of the tissue along the axis, or any other move that ends the automation."""


@dataclass(frozen=True)
class Waypoint:
    """One straight move of the tip (sample frame, µm) at a speed, and why.

    ``in_tissue`` is True when any part of the move lies below the tissue surface;
    ``checkpoint`` asks for the tip to be measured and corrected on arrival.
    """

    reason: WaypointReason
    position_um: Vector
    speed_um_s: float
    phase: Phase
    in_tissue: bool
    checkpoint: bool = False

    def describe(self) -> str:
        x, y, z = (float(v) for v in self.position_um)
        where = " (in tissue)" if self.in_tissue else ""
        check = "; measure and correct here" if self.checkpoint else ""
        return (
            f"{self.reason.value}: ({x:.1f}, {y:.1f}, {z:.1f}) µm at "
            f"{self.speed_um_s:g} µm/s{where}{check}"
        )


@dataclass(frozen=True)
class PipettePlan:
    """A pipette's path: where it starts, its waypoints, and the target it serves."""

    pipette: str
    start_um: Vector
    waypoints: tuple[Waypoint, ...]
    target_um: Vector | None = None
    standoff_um: Vector | None = None

    @property
    def end_um(self) -> Vector:
        return self.waypoints[-1].position_um if self.waypoints else self.start_um

    def phases(self) -> tuple[Phase, ...]:
        """The phases in order of appearance."""
        seen: list[Phase] = []
        for waypoint in self.waypoints:
            if not seen or seen[-1] is not waypoint.phase:
                seen.append(waypoint.phase)
        return tuple(seen)

    def segments(self, phase: Phase | None = None) -> list[tuple[Vector, Waypoint]]:
        """(start of the move, waypoint) pairs, optionally of one phase only."""
        result: list[tuple[Vector, Waypoint]] = []
        here = self.start_um
        for waypoint in self.waypoints:
            if phase is None or waypoint.phase is phase:
                result.append((here, waypoint))
            here = waypoint.position_um
        return result

    def phase_start_um(self, phase: Phase) -> Vector:
        segments = self.segments(phase)
        return segments[0][0] if segments else self.end_um

    def duration_s(self) -> float:
        """Time the moves take at their speeds (no acceleration, corrections or waits)."""
        return sum(
            float(np.linalg.norm(w.position_um - start)) / w.speed_um_s
            for start, w in self.segments()
        )

    def describe(self) -> str:
        x, y, z = (float(v) for v in self.start_um)
        lines = [f"{self.pipette}: from ({x:.1f}, {y:.1f}, {z:.1f}) µm"]
        lines += [
            f"  {i + 1}. [{w.phase.value}] {w.describe()}" for i, w in enumerate(self.waypoints)
        ]
        if self.target_um is not None:
            tx, ty, tz = (float(v) for v in self.target_um)
            lines.append(f"  target ({tx:.1f}, {ty:.1f}, {tz:.1f}) µm")
        return "\n".join(lines)
