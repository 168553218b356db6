"""Calibrating a pipette within a session: prior, safety checks, review and installation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patchpilot.config import RigConfig
from patchpilot.control._protocol import Imaging
from patchpilot.control.autocalibrate import (
    CalibrationSettings,
    PipetteAngles,
    calibrate_pipette,
)
from patchpilot.control.calibration import (
    Calibration,
    CalibrationError,
    CalibrationVerdict,
    review_calibration,
)
from patchpilot.control.geometry import FieldOfView, ManipulatorTransform, rotation_matrix
from patchpilot.control.pipette import PipetteUnit
from patchpilot.control.stop_signal import CalibrationAborted, StopSignal
from patchpilot.events import EventKind, EventLog
from patchpilot.hardware import ManipulatorError

__all__ = ["CalibrationOutcome", "calibrate_unit", "nominal_prior"]

_FAILED = "failed"
STOPPED = "stopped"
"""The verdict of a calibration that STOP ALL ended."""


@dataclass(frozen=True)
class CalibrationOutcome:
    """How one pipette's calibration ended: ``verdict`` is accepted, needs_confirmation,
    refused, failed or stopped (STOP ALL), with the reason and the fit (when there is one)."""

    pipette: str
    verdict: str
    reason: str
    calibration: Calibration | None

    @property
    def accepted(self) -> bool:
        return self.verdict == CalibrationVerdict.ACCEPTED.value


def nominal_prior(unit: PipetteUnit, imaging: Imaging, config: RigConfig) -> ManipulatorTransform:
    """What is assumed before any calibration: device axes turned by the pipette's yaw, and
    the tip somewhere in the field of view near the current focus."""
    matrix = rotation_matrix((0.0, 0.0, unit.config.yaw_deg))
    x, y = config.microscope.stage_position_um
    guess = np.array([x, y, imaging.focus_um])
    return ManipulatorTransform(matrix, guess - matrix @ unit.refresh_reading())


def calibrate_unit(
    unit: PipetteUnit,
    imaging: Imaging,
    config: RigConfig,
    log: EventLog,
    settings: CalibrationSettings | None = None,
    stop: StopSignal | None = None,
) -> CalibrationOutcome:
    """Calibrate ``unit`` (blocking), review the result and install it when accepted.

    Never raises for a failed or stopped calibration: the outcome says what went wrong.
    """
    settings = settings or CalibrationSettings()
    safety = config.safety
    name = unit.name
    lowest_z = safety.tissue_surface_z_um + 5.0  # every pattern point stays above this
    if unit.calibration is not None:
        prior = unit.calibration.transform.shifted(unit.tracker.offset_um(name))
        bottom = float(unit.expected_tip_um()[2]) - unit.uncertainty_um() - settings.lowest_drop_um
        if bottom < lowest_z:
            reason = (
                f"{name}: tip too low to calibrate safely (pattern could reach z {bottom:.1f} µm);"
                " raise it first"
            )
            log.record(EventKind.CALIBRATION, name, "calibration refused", reason=reason)
            return CalibrationOutcome(name, CalibrationVerdict.REFUSED.value, reason, None)
    else:
        prior = nominal_prior(unit, imaging, config)
    try:
        calibration = calibrate_pipette(
            unit.manipulator,
            imaging,
            prior,
            settings,
            min_z_um=lowest_z,
            view=FieldOfView.from_microscope(config.microscope),
            log=log,
            angles=PipetteAngles(unit.config.pitch_deg, unit.config.yaw_deg),
            stop=stop,
        )
    except CalibrationAborted as exc:
        return CalibrationOutcome(name, STOPPED, f"{name}: {exc}", None)
    except (CalibrationError, ManipulatorError) as exc:
        return CalibrationOutcome(name, _FAILED, str(exc), None)
    review = review_calibration(calibration, unit.history, safety, unit.refresh_reading())
    log.record(
        EventKind.CALIBRATION,
        name,
        f"calibration {review.verdict.value}",
        reason=review.reason,
        tip_jump_um=review.tip_jump_um,
        rms_residual_um=calibration.rms_residual_um,
    )
    if review.verdict is CalibrationVerdict.ACCEPTED:
        unit.calibration = calibration
        unit.history.add(calibration)
        unit.tracker.reset(name, max(0.5, calibration.rms_residual_um))
    elif review.verdict is CalibrationVerdict.NEEDS_CONFIRMATION:
        unit.pending_calibration = calibration
    return CalibrationOutcome(name, review.verdict.value, review.reason, calibration)
