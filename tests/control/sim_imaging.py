"""The imaging stand-in for the control and panel tests (``patchpilot.scenarios.standin``),
with each pipette's pitch and yaw read from its simulator when not given."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from patchpilot.clock import Clock
from patchpilot.hardware.simulated import SimulatedManipulator
from patchpilot.scenarios import standin
from patchpilot.scenarios.standin import ImagingNoise, draw_shank

__all__ = ["ImagingNoise", "SimImaging", "draw_shank"]


class SimImaging(standin.SimImaging):
    """``standin.SimImaging`` whose angles default to the simulators' own."""

    def __init__(
        self,
        manipulators: Mapping[str, SimulatedManipulator],
        clock: Clock,
        *,
        angles_deg: Mapping[str, tuple[float, float]] | None = None,
        **options: Any,
    ) -> None:
        given = dict(angles_deg or {})
        angles = {name: given.get(name) or _angles_of(m) for name, m in manipulators.items()}
        super().__init__(manipulators, clock, angles_deg=angles, **options)


def _angles_of(manipulator: SimulatedManipulator) -> tuple[float, float]:
    """Pitch and yaw (degrees) of a simulated pipette, from the direction its 4th axis moves
    (the simulated device knows it whether or not it has that axis)."""
    axis = np.asarray(manipulator.device._d_axis, dtype=np.float64)  # test-side access
    return math.degrees(math.asin(-float(axis[2]))), math.degrees(math.atan2(axis[1], axis[0]))
