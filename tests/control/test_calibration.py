"""The least-squares fit and the review rules (residual, the 30 µm jump)."""

from __future__ import annotations

import numpy as np
import pytest

from patchpilot.config import SafetyConfig
from patchpilot.control.calibration import (
    CalibrationError,
    CalibrationHistory,
    CalibrationVerdict,
    fit_axes,
    fit_axes_robust,
    review_calibration,
)
from patchpilot.control.geometry import ManipulatorTransform


def points(
    transform: ManipulatorTransform, noise_um: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    device = 10000.0 + rng.uniform(-40, 40, (9, 3))
    sample = np.array([transform.to_sample(d) for d in device]) + rng.normal(0, noise_um, (9, 3))
    return device, sample


TRUE = ManipulatorTransform.from_mounting(
    (1.0, -2.0, 47.0), (5.0, 6.0, 60.0), (1e4, 1e4, 1e4), (1.01, 0.99, 1.0), 0.8
)


def test_fit_recovers_the_transform() -> None:
    device, sample = points(TRUE)
    calibration = fit_axes("P1", device, sample)
    np.testing.assert_allclose(calibration.transform.matrix, TRUE.matrix, atol=1e-9)
    np.testing.assert_allclose(calibration.transform.offset_um, TRUE.offset_um, atol=1e-6)
    assert calibration.max_residual_um < 1e-6
    noisy = fit_axes("P1", *points(TRUE, noise_um=0.3, seed=1))
    assert 0.05 < noisy.rms_residual_um < 0.5
    assert noisy.transform.rotation_error_deg(TRUE) < 1.5
    assert "residual rms" in noisy.summary()


def test_fit_refuses_bad_points() -> None:
    device, sample = points(TRUE)
    with pytest.raises(CalibrationError, match="at least 5"):
        fit_axes("P1", device[:4], sample[:4])
    with pytest.raises(CalibrationError, match="non-finite"):
        fit_axes("P1", np.vstack([device[:-1], [np.nan, 0, 0]]), sample)
    flat = device.copy()
    flat[:, 2] = 10000.0
    with pytest.raises(CalibrationError, match="do not span"):
        fit_axes("P1", flat, sample)
    with pytest.raises(CalibrationError, match="N x 3"):
        fit_axes("P1", device, sample[:5])


def test_review_rules() -> None:
    safety = SafetyConfig(max_calibration_residual_um=1.0, max_tip_offset_jump_um=30.0)
    history = CalibrationHistory()
    first = fit_axes("P1", *points(TRUE, 0.2))
    assert review_calibration(first, history, safety).verdict is CalibrationVerdict.ACCEPTED
    history.add(first)
    small_jump = ManipulatorTransform(TRUE.matrix, TRUE.offset_um + np.array([10.0, 0.0, 5.0]))
    review = review_calibration(fit_axes("P1", *points(small_jump, 0.2)), history, safety)
    assert review.verdict is CalibrationVerdict.ACCEPTED and review.tip_jump_um == pytest.approx(
        11.2, abs=0.5
    )
    big_jump = ManipulatorTransform(TRUE.matrix, TRUE.offset_um + np.array([30.0, 10.0, 5.0]))
    review = review_calibration(fit_axes("P1", *points(big_jump, 0.2)), history, safety)
    assert review.verdict is CalibrationVerdict.NEEDS_CONFIRMATION and "confirm" in review.reason
    sloppy = fit_axes("P1", *points(TRUE, 3.0, seed=4))
    review = review_calibration(sloppy, history, safety)
    assert review.verdict is CalibrationVerdict.REFUSED and "exceeds" in review.reason


def test_one_outlier_is_left_out_of_a_poor_fit() -> None:
    """Seven points that fit to 0.1 µm but for one 6 µm off: the refit leaves it out."""
    rng = np.random.default_rng(3)
    matrix = np.array([[0.98, -0.17, 0.0], [0.17, 0.98, 0.02], [0.0, 0.0, 1.01]])
    offset = np.array([-10000.0, -9990.0, -9940.0])
    device = 10000.0 + rng.uniform(-40.0, 40.0, (7, 3))
    sample = device @ matrix.T + offset + rng.normal(0.0, 0.1, (7, 3))
    sample[4] += np.array([6.0, 0.0, 0.0])
    plain = fit_axes("P1", device, sample)
    robust = fit_axes_robust("P1", device, sample)
    assert plain.rms_residual_um > 1.0  # least squares spreads the outlier over all
    assert robust.rms_residual_um < 0.3 and len(robust.residuals_um) == 6
    assert robust.dropped_um is not None and np.allclose(robust.dropped_um, sample[4])
    assert np.allclose(robust.transform.matrix, matrix, atol=0.02)
    # Evenly noisy points have no outlier to leave out; six points leave nothing to spare.
    noisy = device @ matrix.T + offset + rng.normal(0.0, 1.5, (7, 3))
    assert fit_axes_robust("P1", device, noisy).dropped_um is None
    assert fit_axes_robust("P1", device[:6], sample[:6]).dropped_um is None
