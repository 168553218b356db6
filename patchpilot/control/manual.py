"""Checks on the operator's manual moves (jogs), made before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from patchpilot.config import SafetyConfig
from patchpilot.control.pipette_model import PipetteModel
from patchpilot.control.scheduling import MotionRequest, static_clearance
from patchpilot.control.states import PipetteState
from patchpilot.hardware import MoveRefused

__all__ = ["MAX_JOG_UM", "check_jog"]

MAX_JOG_UM = 500.0
"""Largest single jog (µm): a bigger move is a plan, not a jog."""


def check_jog(
    unit: PipetteModel,
    others: Iterable[PipetteModel],
    axis: int,
    step_um: float,
    speed_um_s: float,
    safety: SafetyConfig,
) -> NDArray[np.float64]:
    """The device target of a jog of ``unit``, after checking it (nothing is sent).

    Raises
    ------
    ValueError
        The pipette is not under manual control, the axis is not 0, 1 or 2, the step is not
        finite or larger than ``MAX_JOG_UM``, or the speed is not in (0, max speed].
    MoveRefused
        Outside the soft limits; a sideways move inside the tissue larger than one correction;
        or a tip that would come within the clearance of another pipette (both calibrated).
    """
    if unit.state is not PipetteState.MANUAL:
        raise ValueError(f"{unit.name} is {unit.state.value}; take it over before jogging")
    if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < 3:
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis!r}")
    if not (math.isfinite(step_um) and abs(step_um) <= MAX_JOG_UM):
        raise ValueError(f"step {step_um} µm must be finite and at most {MAX_JOG_UM:g} µm")
    top = unit.config.max_speed_um_s
    if not (math.isfinite(speed_um_s) and 0 < speed_um_s <= top):
        raise ValueError(f"speed {speed_um_s} µm/s must be in (0, {top:g}]")
    here = unit.refresh_reading()
    target = here.copy()
    target[axis] += step_um
    unit.manipulator.check_move([float(v) for v in target], speed_um_s)
    if unit.calibration is None:
        return target
    transform = unit.calibration.transform.shifted(unit.tracker.offset_um(unit.name))
    start, end = transform.to_sample(here), transform.to_sample(target)
    sideways = unit.geometry.off_axis_um(end - start)
    in_tissue = min(float(start[2]), float(end[2])) < safety.tissue_surface_z_um
    if in_tissue and sideways > safety.max_single_correction_um:
        raise MoveRefused(f"{unit.name}: jog moves {sideways:.1f} µm sideways inside the tissue")
    requests = {unit.name: MotionRequest(unit.geometry, end)}
    for other in others:
        if other is not unit and other.is_calibrated():
            requests[other.name] = MotionRequest(other.geometry, other.expected_tip_um())
    for pair, gap in static_clearance(requests).items():
        if unit.name in pair and gap < safety.min_clearance_um:
            neighbour = next(n for n in pair if n != unit.name)
            raise MoveRefused(
                f"{unit.name}: jog would bring it within {max(gap, 0.0):.1f} µm of {neighbour}"
            )
    return target
