"""Calibrations as values: the least-squares fit, its residuals, and whether to accept it.

``fit_axes`` fits ``sample = M @ manipulator + offset`` to corresponding points by linear least
squares and reports each point's residual in µm (acq4 fits axes by regression too).
``review_calibration`` applies the safety rules: a residual above
``safety.max_calibration_residual_um`` is refused; a tip offset that jumps more than
``safety.max_tip_offset_jump_um`` from the pipette's history needs the operator's confirmation
(acq4's 30 µm rule), because a jump that large usually means a wrong tip was found, or the
pipette was changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from patchpilot.config import SafetyConfig
from patchpilot.control.geometry import GeometryError, ManipulatorTransform

__all__ = [
    "Calibration",
    "CalibrationError",
    "CalibrationHistory",
    "CalibrationVerdict",
    "Review",
    "fit_axes",
    "fit_axes_robust",
    "review_calibration",
]

Vector = NDArray[np.float64]


class CalibrationError(RuntimeError):
    """A calibration that could not be done or was refused; the message says why."""


@dataclass(frozen=True)
class Calibration:
    """A fitted manipulator-to-sample transform and how well it fits its points.

    Parameters
    ----------
    pipette
        Whose manipulator.
    transform
        The fit.
    manipulator_um, sample_um
        The corresponding points (N x 3, µm).
    residuals_um
        Distance between each fitted and measured point (µm).
    """

    pipette: str
    transform: ManipulatorTransform
    manipulator_um: Vector
    sample_um: Vector
    residuals_um: Vector
    dropped_um: Vector | None = None
    """Sample points left out of the fit as outliers (see ``fit_axes_robust``), or None."""

    @property
    def rms_residual_um(self) -> float:
        return float(np.sqrt(np.mean(self.residuals_um**2)))

    @property
    def max_residual_um(self) -> float:
        return float(np.max(self.residuals_um))

    def summary(self) -> str:
        return (
            f"{self.pipette}: {len(self.residuals_um)} points, residual rms "
            f"{self.rms_residual_um:.2f} µm, max {self.max_residual_um:.2f} µm"
        )


def fit_axes(pipette: str, manipulator_um: ArrayLike, sample_um: ArrayLike) -> Calibration:
    """Least-squares affine fit of sample positions to manipulator readings.

    Parameters
    ----------
    pipette
        Name, for messages.
    manipulator_um
        N x 3 device readings (µm); extra columns (a 4th axis) are ignored.
    sample_um
        N x 3 measured tip positions (µm, sample frame).

    Raises
    ------
    CalibrationError
        Fewer than 5 points, mismatched or non-finite arrays, or points that do not span all
        three device axes (the fit would be singular).
    """
    device = np.asarray(manipulator_um, dtype=np.float64)
    sample = np.asarray(sample_um, dtype=np.float64)
    if device.ndim != 2 or sample.ndim != 2 or device.shape[0] != sample.shape[0]:
        raise CalibrationError(
            f"{pipette}: need N x 3 manipulator and sample points, got {device.shape} and "
            f"{sample.shape}"
        )
    device = device[:, :3]
    if device.shape[1] != 3 or sample.shape[1] != 3:
        raise CalibrationError(f"{pipette}: points must have 3 coordinates")
    if not (np.all(np.isfinite(device)) and np.all(np.isfinite(sample))):
        raise CalibrationError(f"{pipette}: calibration points contain non-finite values")
    if device.shape[0] < 5:
        raise CalibrationError(f"{pipette}: need at least 5 points, got {device.shape[0]}")
    centred = device - device.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    if singular[-1] < 1e-3 * max(singular[0], 1e-9):
        raise CalibrationError(f"{pipette}: the points do not span all three manipulator axes")
    design = np.hstack([device, np.ones((device.shape[0], 1))])
    solution, *_ = np.linalg.lstsq(design, sample, rcond=None)
    matrix = np.asarray(solution[:3].T, dtype=np.float64)
    offset = solution[3]
    try:
        transform = ManipulatorTransform(matrix, offset)
    except GeometryError as exc:
        raise CalibrationError(f"{pipette}: fitted transform unusable: {exc}") from None
    fitted = device @ matrix.T + offset
    residuals = np.linalg.norm(fitted - sample, axis=1)
    return Calibration(pipette, transform, device, sample, residuals)


def fit_axes_robust(
    pipette: str,
    manipulator_um: ArrayLike,
    sample_um: ArrayLike,
    *,
    good_rms_um: float = 1.0,
    min_points: int = 6,
) -> Calibration:
    """``fit_axes``, leaving out one outlier when the fit is poor.

    One measurement in a pattern can be wrong by several micrometres (a detection of the
    wrong end of a faint shank, a noisy depth sweep) while the others agree to a fraction of
    a micrometre. With few points the least-squares fit spreads such an error over all of
    them, so each point is left out in turn: when the rms residual exceeds ``good_rms_um``,
    at least ``min_points`` would remain, and leaving one point out at least halves the rms,
    the best such refit is returned with that point in ``dropped_um``. Everything else (too
    few points, degenerate patterns) raises as ``fit_axes`` does.
    """
    full = fit_axes(pipette, manipulator_um, sample_um)
    count = len(full.residuals_um)
    if full.rms_residual_um <= good_rms_um or count - 1 < min_points:
        return full
    best: tuple[Calibration, int] | None = None
    for left_out in range(count):
        keep = np.arange(count) != left_out
        try:
            refit = fit_axes(pipette, full.manipulator_um[keep], full.sample_um[keep])
        except CalibrationError:
            continue  # without it the points no longer span the axes
        if best is None or refit.rms_residual_um < best[0].rms_residual_um:
            best = (refit, left_out)
    if best is None or best[0].rms_residual_um > 0.5 * full.rms_residual_um:
        return full  # no single outlier: the whole pattern is noisy
    refit, left_out = best
    return replace(refit, dropped_um=full.sample_um[left_out].copy())


class CalibrationVerdict(str, Enum):
    ACCEPTED = "accepted"
    NEEDS_CONFIRMATION = "needs_confirmation"
    REFUSED = "refused"


@dataclass(frozen=True)
class Review:
    verdict: CalibrationVerdict
    reason: str
    tip_jump_um: float | None


@dataclass
class CalibrationHistory:
    """Accepted calibrations of one pipette, oldest first (the 30 µm rule compares to them)."""

    accepted: list[Calibration] = field(default_factory=list)

    @property
    def latest(self) -> Calibration | None:
        return self.accepted[-1] if self.accepted else None

    def add(self, calibration: Calibration) -> None:
        self.accepted.append(calibration)


def review_calibration(
    calibration: Calibration,
    history: CalibrationHistory,
    safety: SafetyConfig,
    reference_um: ArrayLike | None = None,
) -> Review:
    """Accept, refuse, or ask the operator about a new calibration.

    Parameters
    ----------
    calibration
        The new fit.
    history
        The pipette's accepted calibrations.
    safety
        Thresholds: ``max_calibration_residual_um`` and ``max_tip_offset_jump_um``.
    reference_um
        Device reading at which to compare old and new tip positions (default: the centroid
        of the new calibration's points).
    """
    if calibration.rms_residual_um > safety.max_calibration_residual_um:
        return Review(
            CalibrationVerdict.REFUSED,
            f"{calibration.pipette}: residual {calibration.rms_residual_um:.2f} µm exceeds "
            f"{safety.max_calibration_residual_um:g} µm",
            None,
        )
    previous = history.latest
    if previous is None:
        return Review(CalibrationVerdict.ACCEPTED, f"{calibration.summary()}; first", None)
    reference = (
        np.asarray(reference_um, dtype=np.float64)[:3]
        if reference_um is not None
        else calibration.manipulator_um.mean(axis=0)
    )
    jump = float(
        np.linalg.norm(
            calibration.transform.to_sample(reference) - previous.transform.to_sample(reference)
        )
    )
    if jump > safety.max_tip_offset_jump_um:
        return Review(
            CalibrationVerdict.NEEDS_CONFIRMATION,
            f"{calibration.pipette}: tip offset moved {jump:.1f} µm from the last calibration "
            f"(more than {safety.max_tip_offset_jump_um:g} µm): confirm the tip was found right",
            jump,
        )
    return Review(
        CalibrationVerdict.ACCEPTED, f"{calibration.summary()}; tip moved {jump:.1f} µm", jump
    )
