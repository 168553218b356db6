"""Checks on the operator's manual moves (jogs), made before anything is sent.

``check_jog`` moves one device axis; ``check_axial_jog`` moves the tip along the pipette's
own axis (the only direction allowed inside the tissue): on the 4th axis of a manipulator
that has one with soft limits (a uMp-4's "D" axis, positive = advance), else on the three
axes through the calibration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from patchpilot.config import SafetyConfig
from patchpilot.control.bodies import body_distance_um, pipette_body, tissue_part, zone_body
from patchpilot.control.pipette_model import PipetteModel
from patchpilot.control.planning import NOGO_MARGIN_UM
from patchpilot.control.scheduling import MotionRequest, static_clearance
from patchpilot.control.states import PipetteState
from patchpilot.hardware import MoveRefused

__all__ = ["MAX_JOG_UM", "check_axial_jog", "check_jog"]

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
    if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < 3:
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis!r}")
    _check_request(unit, step_um, speed_um_s)
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
    _check_clearance(unit, others, end, safety)
    return target


def check_axial_jog(
    unit: PipetteModel,
    others: Iterable[PipetteModel],
    step_um: float,
    speed_um_s: float,
    safety: SafetyConfig,
) -> NDArray[np.float64]:
    """The device target (every axis) of a jog along the pipette's axis, after checking it.

    Positive ``step_um`` advances the tip (toward the tissue), negative backs it out.

    Raises
    ------
    ValueError
        Not under manual control, a bad step or speed, or no calibration and no 4th axis
        with soft limits (the pipette axis in device terms is then unknown).
    MoveRefused
        Outside the soft limits, into a no-go zone inside
        the tissue, or within the clearance of another pipette. Nothing is sent.
    """
    _check_request(unit, step_um, speed_um_s)
    device = unit.manipulator
    unit.refresh_reading()
    here = np.asarray(unit.full_reading_um, dtype=np.float64)
    target = here.copy()
    # A 4th axis may only move when the rig file gives it soft limits.
    diagonal = device.n_axes >= 4 and len(unit.config.soft_limits.min_um) >= 4
    if diagonal:
        target[3] += step_um  # the diagonal axis moves along the pipette
    elif unit.calibration is None:
        raise ValueError(
            f"{unit.name} is not calibrated and has no 4th axis with soft limits: its pipette "
            "axis in device terms is unknown; calibrate it, or jog x, y, z"
        )
    else:
        transform = unit.calibration.transform
        target[:3] += transform.vector_to_manipulator(step_um * unit.geometry.axis)
    device.check_move([float(v) for v in target], speed_um_s)
    if unit.calibration is None:
        return target
    end = unit.expected_tip_um() + step_um * unit.geometry.axis
    inside = tissue_part(pipette_body(unit.geometry, end), safety.tissue_surface_z_um)
    if inside is not None:
        for zone in safety.nogo_zones:
            gap = body_distance_um(inside, zone_body(zone))
            if gap < NOGO_MARGIN_UM:
                raise MoveRefused(
                    f"{unit.name}: jog would bring it {max(gap, 0.0):.1f} µm from no-go zone "
                    f"{zone.name!r} (at least {NOGO_MARGIN_UM:g} µm needed)"
                )
    _check_clearance(unit, others, end, safety)
    return target


def _check_request(unit: PipetteModel, step_um: float, speed_um_s: float) -> None:
    if unit.state is not PipetteState.MANUAL:
        raise ValueError(f"{unit.name} is {unit.state.value}; take it over before jogging")
    if not (math.isfinite(step_um) and abs(step_um) <= MAX_JOG_UM):
        raise ValueError(f"step {step_um} µm must be finite and at most {MAX_JOG_UM:g} µm")
    top = unit.config.max_speed_um_s
    if not (math.isfinite(speed_um_s) and 0 < speed_um_s <= top):
        raise ValueError(f"speed {speed_um_s} µm/s must be in (0, {top:g}]")


def _check_clearance(
    unit: PipetteModel,
    others: Iterable[PipetteModel],
    end_um: NDArray[np.float64],
    safety: SafetyConfig,
) -> None:
    requests = {unit.name: MotionRequest(unit.geometry, end_um)}
    for other in others:
        if other is not unit and other.is_calibrated():
            other.refresh_reading()  # it may have moved since the last frame (another jog)
            requests[other.name] = MotionRequest(other.geometry, other.expected_tip_um())
    for pair, gap in static_clearance(requests).items():
        if unit.name in pair and gap < safety.min_clearance_um:
            neighbour = next(n for n in pair if n != unit.name)
            raise MoveRefused(
                f"{unit.name}: jog would bring it within {max(gap, 0.0):.1f} µm of {neighbour}"
            )
